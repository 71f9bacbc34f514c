// The decoder rejects every malformed payload with a CompressionError before reading past the
// buffer: corrupted header fields, truncation at every length, oversize buffers, bad top-k
// indices.
#include <gtest/gtest.h>

#include <cstring>
#include <random>
#include <string>

#include "compression_test_util.h"
#include "csrc/compression/codec.h"

namespace torchwan::compression {
namespace {

using testing::encode_to_vector;
using testing::gradient_like;

void reseal(std::vector<uint8_t>& payload) {
  const uint32_t checksum = header_checksum(payload.data());
  std::memcpy(payload.data() + 12, &checksum, 4);
}

// Decoding must throw CompressionError whose message contains `expected`; both decode paths.
void expect_rejected(const std::vector<uint8_t>& payload, size_t count,
                     const std::string& expected) {
  std::vector<float> output(count, 7.0f);
  try {
    decode(payload, output);
    FAIL() << "decode accepted a malformed payload (expected '" << expected << "')";
  } catch (const CompressionError& error) {
    EXPECT_NE(std::string(error.what()).find(expected), std::string::npos) << error.what();
  }
  EXPECT_THROW(decode_accumulate(payload, output), CompressionError);
  EXPECT_THROW(inspect(payload), CompressionError);
}

TEST(CompressionWireFormat, HeaderRoundTrips) {
  CodecConfig config;
  config.codec = Codec::kInt8Block;
  config.block_size = 512;
  config.stochastic_rounding = true;
  const auto payload = encode_to_vector(config, gradient_like(1000, 1));
  const Header header = inspect(payload);
  EXPECT_EQ(header.codec, Codec::kInt8Block);
  EXPECT_EQ(header.flags, kFlagStochastic);
  EXPECT_EQ(header.block_size, 512u);
  EXPECT_EQ(header.element_count, 1000u);
  EXPECT_EQ(header.aux, 0u);
  EXPECT_EQ(header.payload_length, payload.size() - kHeaderSize);
  EXPECT_EQ(std::memcmp(payload.data(), "TWCP", 4), 0);
}

TEST(CompressionWireFormat, EveryCorruptedHeaderByteIsRejected) {
  for (const CodecConfig& config : testing::all_configs()) {
    const auto good = encode_to_vector(config, gradient_like(300, 2));
    for (size_t byte = 0; byte < kHeaderSize; ++byte) {
      for (uint8_t flip : {uint8_t{0x01}, uint8_t{0x80}, uint8_t{0xFF}}) {
        auto bad = good;
        bad[byte] ^= flip;
        std::vector<float> output(300);
        EXPECT_THROW(decode(bad, output), CompressionError)
            << codec_name(config.codec) << " byte " << byte;
      }
    }
  }
}

// Each field set to a bad value with a valid checksum: the field checks themselves must catch it.
TEST(CompressionWireFormat, EachFieldIsValidated) {
  CodecConfig config;
  config.codec = Codec::kInt8Block;
  const auto good = encode_to_vector(config, gradient_like(1000, 3));
  auto corrupt = [&](size_t offset, const void* value, size_t length) {
    auto bad = good;
    std::memcpy(bad.data() + offset, value, length);
    reseal(bad);
    return bad;
  };
  const uint32_t magic = 0x12345678u;
  expect_rejected(corrupt(0, &magic, 4), 1000, "magic");
  const uint8_t version = 2;
  expect_rejected(corrupt(4, &version, 1), 1000, "version");
  const uint8_t codec = 77;
  expect_rejected(corrupt(5, &codec, 1), 1000, "unknown codec");
  const uint8_t zero_codec = 0;
  expect_rejected(corrupt(5, &zero_codec, 1), 1000, "unknown codec");
  const uint8_t flags = 0x04;
  expect_rejected(corrupt(6, &flags, 1), 1000, "flag");
  const uint8_t reserved = 1;
  expect_rejected(corrupt(7, &reserved, 1), 1000, "reserved");
  for (uint32_t block : {0u, 16u, 100u, 1u << 21, 0xFFFFFFFFu}) {
    expect_rejected(corrupt(8, &block, 4), 1000, "block size");
  }
  const uint32_t other_block = 512;  // valid on its own, but the payload length no longer fits
  expect_rejected(corrupt(8, &other_block, 4), 1000, "payload length");
  const uint32_t checksum = 0xDEADBEEFu;
  {
    auto bad = good;
    std::memcpy(bad.data() + 12, &checksum, 4);
    expect_rejected(bad, 1000, "checksum");
  }
  for (uint64_t count : {uint64_t{999}, uint64_t{1001}, uint64_t{1} << 40, ~uint64_t{0}}) {
    expect_rejected(corrupt(16, &count, 8), 1000, count > (uint64_t{1} << 32) ? "limit" : "length");
  }
  const uint64_t aux = 5;
  expect_rejected(corrupt(24, &aux, 8), 1000, "aux");
  for (uint64_t length :
       {uint64_t{0}, good.size() - kHeaderSize - 1, good.size() - kHeaderSize + 1, ~uint64_t{0}}) {
    expect_rejected(corrupt(32, &length, 8), 1000, "payload length");
  }
  // Stochastic flag on a codec without stochastic rounding.
  CodecConfig fp8;
  fp8.codec = Codec::kFloat8Block;
  auto bad = encode_to_vector(fp8, gradient_like(1000, 3));
  bad[6] = kFlagStochastic;
  reseal(bad);
  expect_rejected(bad, 1000, "stochastic");
}

TEST(CompressionWireFormat, TopKCountIsValidated) {
  CodecConfig config;
  config.codec = Codec::kTopK;
  config.topk_fraction = 0.1;
  const auto good = encode_to_vector(config, gradient_like(100, 4));
  for (uint64_t k : {uint64_t{0}, uint64_t{101}, ~uint64_t{0}}) {
    auto bad = good;
    std::memcpy(bad.data() + 24, &k, 8);
    reseal(bad);
    expect_rejected(bad, 100, "top-k count");
  }
}

TEST(CompressionWireFormat, TruncationAtEveryLengthIsRejected) {
  for (const CodecConfig& config : testing::all_configs()) {
    for (size_t count : {size_t{0}, size_t{1}, size_t{70}, size_t{300}}) {
      const auto good = encode_to_vector(config, gradient_like(count, 5));
      for (size_t length = 0; length < good.size(); ++length) {
        // A copy of exactly `length` bytes, so reading past it is caught by sanitizers too.
        const std::vector<uint8_t> truncated(good.begin(), good.begin() + length);
        std::vector<float> output(count);
        ASSERT_THROW(decode(truncated, output), CompressionError)
            << codec_name(config.codec) << " count " << count << " length " << length;
      }
      auto oversize = good;
      oversize.push_back(0);
      std::vector<float> output(count);
      EXPECT_THROW(decode(oversize, output), CompressionError);
      EXPECT_NO_THROW(decode(good, output));
    }
  }
}

TEST(CompressionWireFormat, BadTopKIndicesAreRejectedBeforeWriting) {
  CodecConfig config;
  config.codec = Codec::kTopK;
  config.topk_fraction = 0.05;
  const auto good = encode_to_vector(config, gradient_like(200, 6));
  const size_t k = inspect(good).aux;
  ASSERT_EQ(k, 10u);
  auto with_index = [&](size_t position, uint32_t index) {
    auto bad = good;
    std::memcpy(bad.data() + kHeaderSize + 4 * position, &index, 4);
    return bad;
  };
  uint32_t first;
  std::memcpy(&first, good.data() + kHeaderSize, 4);
  const std::vector<std::vector<uint8_t>> bad_payloads = {
      with_index(3, 200),          // out of range
      with_index(9, 0xFFFFFFFFu),  // far out of range
      with_index(1, first),        // duplicate
      with_index(0, 199),          // not ascending
  };
  for (const auto& bad : bad_payloads) {
    std::vector<float> output(200, 7.0f);
    EXPECT_THROW(decode(bad, output), CompressionError);
    EXPECT_THROW(decode_accumulate(bad, output), CompressionError);
    for (float value : output) ASSERT_EQ(value, 7.0f);  // nothing was written
  }
}

// Random corruption anywhere in the payload (header or body): decoding either throws
// CompressionError or succeeds; it never reads or writes out of bounds (run under ASan to see).
TEST(CompressionWireFormat, RandomCorruptionNeverEscapesTheBuffer) {
  std::mt19937 generator(1234);
  for (const CodecConfig& config : testing::all_configs()) {
    const size_t count = 333;
    const auto good = encode_to_vector(config, gradient_like(count, 7));
    std::uniform_int_distribution<size_t> position(0, good.size() - 1);
    std::uniform_int_distribution<int> byte_value(0, 255);
    std::uniform_int_distribution<int> flips(1, 4);
    for (int trial = 0; trial < 2000; ++trial) {
      std::vector<uint8_t> bad = good;
      for (int f = flips(generator); f > 0; --f) {
        bad[position(generator)] = static_cast<uint8_t>(byte_value(generator));
      }
      if (trial % 3 == 0) reseal(bad);  // get past the checksum to exercise the field checks
      std::vector<float> output(count);
      try {
        decode_accumulate(bad, output);
      } catch (const CompressionError&) {
      }
    }
  }
}

}  // namespace
}  // namespace torchwan::compression
