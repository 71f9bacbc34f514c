// The one byte codec (base/byte_io.h): every field kind round-trips in little-endian order, every
// truncation is refused naming the field and its offset, lengths and counts above their limits are
// refused before anything is allocated, and a layer's reader rethrows as its own error type.
#include "base/byte_io.h"

#include <gtest/gtest.h>

#include <array>
#include <cstdint>
#include <limits>
#include <string>
#include <vector>

#include "thrown_message.h"
namespace torchwan::base {
namespace {

bool contains(const std::string& text, const std::string& part) {
  return text.find(part) != std::string::npos;
}

enum class Color : uint16_t { kRed = 1, kBlue = 0x0203 };

// One of every field kind, in a fixed order.
std::vector<uint8_t> sample() {
  ByteWriter out;
  out.put<uint8_t>(0xAB);
  out.put<uint16_t>(0x1234);
  out.put<uint32_t>(0xDEADBEEF);
  out.put<uint64_t>(0x0102030405060708ull);
  out.put<int32_t>(-5);
  out.put(1.5f);
  out.put(-2.25);
  out.put(true);
  out.put(Color::kBlue);
  out.put_string("hello");
  out.put_bytes("xyz", 3);
  return out.take();
}

// The fields of sample() with their names, read in the same order.
void read_sample(ByteReader& in) {
  EXPECT_EQ(in.get<uint8_t>("u8"), 0xAB);
  EXPECT_EQ(in.get<uint16_t>("u16"), 0x1234);
  EXPECT_EQ(in.get<uint32_t>("u32"), 0xDEADBEEFu);
  EXPECT_EQ(in.get<uint64_t>("u64"), 0x0102030405060708ull);
  EXPECT_EQ(in.get<int32_t>("i32"), -5);
  EXPECT_EQ(in.get<float>("f32"), 1.5f);
  EXPECT_EQ(in.get<double>("f64"), -2.25);
  EXPECT_EQ(in.get<bool>("flag"), true);
  EXPECT_EQ(in.get<Color>("color"), Color::kBlue);
  EXPECT_EQ(in.get_string("greeting", 64), "hello");
  const auto tail = in.get_bytes(3, "tail");
  EXPECT_EQ(std::string(tail.begin(), tail.end()), "xyz");
  in.expect_end();
}

// Names of the fields of sample() and the offset each starts at.
const std::vector<std::pair<std::string, size_t>> kFieldStarts = {
    {"u8", 0},   {"u16", 1},   {"u32", 3},    {"u64", 7},       {"i32", 15}, {"f32", 19},
    {"f64", 23}, {"flag", 31}, {"color", 32}, {"greeting", 34}, {"tail", 43}};

std::string complaint(const std::vector<uint8_t>& bytes, void (*read)(ByteReader&)) {
  ByteReader in(bytes, "sample record");
  return testing::thrown_message<MalformedBytes>([&] { read(in); });
}

TEST(ByteIo, EveryFieldKindRoundTripsLittleEndian) {
  const auto bytes = sample();
  ASSERT_EQ(bytes.size(), 46u);
  EXPECT_EQ(bytes[1], 0x34);  // u16 low byte first
  EXPECT_EQ(bytes[2], 0x12);
  EXPECT_EQ(bytes[3], 0xEF);
  EXPECT_EQ(bytes[7], 0x08);
  EXPECT_EQ(bytes[15], 0xFB);  // -5
  EXPECT_EQ(bytes[34], 5);     // the string's u32 length
  ByteReader in(bytes, "sample record");
  read_sample(in);
  EXPECT_EQ(in.remaining(), 0u);
}

TEST(ByteIo, EveryTruncationIsRefusedNamingTheField) {
  const auto good = sample();
  for (size_t cut = 0; cut < good.size(); ++cut) {
    const std::vector<uint8_t> bytes(good.begin(), good.begin() + static_cast<long>(cut));
    std::string expected_field;
    for (const auto& [field, start] : kFieldStarts) {
      if (start <= cut) expected_field = field;
    }
    // A cut inside the string's body is reported at the body, after its 4-byte length.
    ByteReader in(bytes, "sample record");
    try {
      read_sample(in);
      FAIL() << "accepted " << cut << " of " << good.size() << " bytes";
    } catch (const MalformedBytes& malformed) {
      const std::string what = malformed.what();
      EXPECT_EQ(malformed.problem(), MalformedBytes::Problem::kTruncated) << what;
      EXPECT_EQ(malformed.field(), expected_field) << what;
      EXPECT_TRUE(contains(what, "malformed sample record: truncated at " + expected_field))
          << what;
      EXPECT_TRUE(contains(what, "offset " + std::to_string(malformed.offset()))) << what;
      EXPECT_LE(malformed.offset(), cut) << what;
    }
  }
}

TEST(ByteIo, TrailingBytesAreRefused) {
  auto bytes = sample();
  bytes.push_back(0);
  const std::string why = complaint(bytes, read_sample);
  EXPECT_TRUE(contains(why, "1 trailing bytes after offset 46")) << why;
}

TEST(ByteIo, OversizeLengthsAndCountsAreRefusedBeforeAllocating) {
  ByteWriter out;
  out.put<uint32_t>(0xFFFFFFFF);  // a string length far beyond the input
  const auto huge = out.take();
  std::string why = complaint(huge, [](ByteReader& in) { in.get_string("name", 256); });
  EXPECT_TRUE(contains(why, "name at offset 0: length 4294967295 exceeds the limit of 256")) << why;
  // Within the limit but beyond the input: truncated at the string's body.
  why = complaint(
      huge, [](ByteReader& in) { in.get_string("name", std::numeric_limits<uint32_t>::max()); });
  EXPECT_TRUE(contains(why, "truncated at name (offset 4: needs 4294967295 bytes, 0 left)")) << why;
  // A count whose items could not fit in what is left.
  ByteWriter list;
  list.put<uint32_t>(1000);
  list.put_zeros(16);
  try {
    ByteReader in(list.bytes(), "list");
    in.get_count("members", 16);
    FAIL() << "accepted a count of 1000 over 16 bytes";
  } catch (const MalformedBytes& malformed) {
    EXPECT_EQ(malformed.problem(), MalformedBytes::Problem::kTooLong);
    EXPECT_TRUE(contains(malformed.what(), "members at offset 0: announces 1000 items"))
        << malformed.what();
  }
  ByteReader in(list.bytes(), "list");
  EXPECT_EQ(in.get_count("members", 0), 1000u) << "no minimum size, no limit";
}

TEST(ByteIo, RejectNamesTheLastFieldRead) {
  ByteWriter out;
  out.put<uint32_t>(7);
  out.put<uint16_t>(99);
  const auto bytes = out.take();
  const std::string why = complaint(bytes, [](ByteReader& in) {
    in.get<uint32_t>("magic");
    if (in.get<uint16_t>("version") != 1) in.reject("version", "version 99, expected 1");
  });
  EXPECT_EQ(why, "malformed sample record: version at offset 4: version 99, expected 1");
  EXPECT_EQ(complaint(bytes, [](ByteReader& in) { in.fail("6 bytes, expected 8"); }),
            "malformed sample record: 6 bytes, expected 8");
}

TEST(ByteIo, FixedWriterFillsTheCallersBufferAndRefusesOverflow) {
  std::array<uint8_t, 6> buffer{};
  ByteWriter out(buffer);
  out.put<uint32_t>(0x04030201);
  out.put_at<uint16_t>(0, 0xBBAA);
  EXPECT_EQ(buffer[0], 0xAA);
  EXPECT_EQ(buffer[1], 0xBB);
  EXPECT_EQ(buffer[2], 0x03);
  EXPECT_EQ(out.size(), 4u);
  EXPECT_THROW(out.put<uint32_t>(0), std::length_error);
  EXPECT_THROW(out.put_at<uint32_t>(2, 0), std::length_error);
  out.put<uint16_t>(0x0605);
  EXPECT_EQ(buffer[5], 0x06);
  EXPECT_TRUE(out.take().empty()) << "a fixed writer's bytes are the caller's";
}

TEST(ByteIo, GrowingWriterKeepsEverythingWritten) {
  ByteWriter out;
  for (uint32_t i = 0; i < 10000; ++i) out.put(i);
  const auto bytes = out.take();
  ASSERT_EQ(bytes.size(), 40000u);
  ByteReader in(bytes, "counting");
  for (uint32_t i = 0; i < 10000; ++i) ASSERT_EQ(in.get<uint32_t>("i"), i);
  EXPECT_EQ(out.size(), 0u);
}

// A layer's own error type, as the transport, elastic and compression readers throw.
struct LayerError : std::runtime_error {
  using std::runtime_error::runtime_error;
};

class LayerReader : public ByteReader {
 public:
  using ByteReader::ByteReader;

 protected:
  [[noreturn]] void raise(const MalformedBytes& malformed) const override {
    throw LayerError(malformed.what());
  }
};

TEST(ByteIo, ALayersReaderRethrowsAsItsOwnType) {
  const std::vector<uint8_t> bytes{1, 2};
  LayerReader in(bytes, "layer header");
  try {
    in.get<uint32_t>("magic");
    FAIL();
  } catch (const LayerError& error) {
    EXPECT_EQ(std::string(error.what()),
              "malformed layer header: truncated at magic (offset 0: needs 4 bytes, 2 left)");
  }
}

}  // namespace
}  // namespace torchwan::base
