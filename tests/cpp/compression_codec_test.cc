// Round trips of every codec: error bounds, exact conversions against independent oracles, sizes
// and compression ratios, decode-accumulate, non-finite inputs and argument checks.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>
#include <numeric>
#include <span>

#include "compression_test_util.h"
#include "csrc/compression/codec.h"
#include "csrc/compression/codec_table.h"
#include "csrc/compression/cpu_kernels.h"
#include "csrc/compression/scalar_math.h"

namespace torchwan::compression {
namespace {

using testing::bits;
using testing::decode_to_vector;
using testing::encode_to_vector;
using testing::gradient_like;
using testing::scale_of_block;

CodecConfig config_for(Codec codec) {
  CodecConfig config;
  config.codec = codec;
  return config;
}

// A float from every 4093rd bit pattern (covers every exponent, NaNs and infinities included).
std::vector<float> sampled_floats() {
  std::vector<float> values;
  for (uint64_t word = 0; word <= 0xFFFFFFFFull; word += 4093) {
    values.push_back(math::float_from_bits(static_cast<uint32_t>(word)));
  }
  values.push_back(std::numeric_limits<float>::infinity());
  values.push_back(-std::numeric_limits<float>::infinity());
  values.push_back(65504.0f);
  values.push_back(65519.99f);
  values.push_back(65520.0f);
  return values;
}

#if defined(__FLT16_MAX__)
TEST(CompressionCast, Float16MatchesCompilerConversion) {
  for (float value : sampled_floats()) {
    const uint16_t ours = math::float_to_half(value);
    const _Float16 reference = static_cast<_Float16>(value);
    uint16_t reference_bits;
    std::memcpy(&reference_bits, &reference, 2);
    if (std::isnan(value)) {
      EXPECT_TRUE(std::isnan(math::half_to_float(ours)));
      continue;
    }
    ASSERT_EQ(ours, reference_bits) << "value " << value;
    ASSERT_EQ(bits(math::half_to_float(ours)), bits(static_cast<float>(reference)));
  }
}
#endif

TEST(CompressionCast, BFloat16IsNearestEven) {
  for (float value : sampled_floats()) {
    const float decoded = math::bfloat16_to_float(math::float_to_bfloat16(value));
    if (std::isnan(value)) {
      EXPECT_TRUE(std::isnan(decoded));
      continue;
    }
    // Candidates: truncation toward zero and the next bfloat16 away from zero.
    const uint32_t lower = bits(value) & 0xFFFF0000u;
    const uint32_t upper = lower + 0x10000u;
    const double a = math::float_from_bits(lower);
    // Past the largest finite bfloat16 the next step up is 2^128, which rounds to infinity.
    const bool upper_is_infinite = (upper & 0x7FFFFFFFu) == 0x7F800000u;
    const double b = upper_is_infinite ? std::copysign(std::ldexp(1.0, 128), value)
                                       : static_cast<double>(math::float_from_bits(upper));
    const double distance_a = std::fabs(static_cast<double>(value) - a);
    const double distance_b = std::fabs(static_cast<double>(value) - b);
    double expected = distance_a < distance_b ? a : b;
    if (distance_a == distance_b) expected = ((lower >> 16) & 1u) == 0 ? a : b;
    if (std::isinf(value) || std::fabs(expected) == std::ldexp(1.0, 128)) {
      expected = std::copysign(std::numeric_limits<double>::infinity(), value);
    }
    ASSERT_EQ(static_cast<double>(decoded), expected) << "value " << value;
  }
}

TEST(CompressionCast, Float8E4M3IsNearestEvenAndSaturates) {
  EXPECT_EQ(math::e4m3_to_float(0x7E), 448.0f);
  EXPECT_EQ(math::e4m3_to_float(0x08), 0x1p-6f);
  EXPECT_EQ(math::e4m3_to_float(0x01), 0x1p-9f);
  EXPECT_TRUE(std::isnan(math::e4m3_to_float(0x7F)));
  std::vector<double> representable;
  for (int code = 0; code < 0x7F; ++code) {
    representable.push_back(math::e4m3_to_float(static_cast<uint8_t>(code)));
  }
  for (float value : sampled_floats()) {
    const uint8_t code = math::float_to_e4m3(value);
    if (std::isnan(value)) {
      EXPECT_EQ(code & 0x7F, 0x7F);
      continue;
    }
    const double magnitude = std::fabs(static_cast<double>(value));
    int best = 0;
    for (int c = 1; c < 0x7F; ++c) {
      const double d_best = std::fabs(magnitude - representable[best]);
      const double d_c = std::fabs(magnitude - representable[c]);
      if (d_c < d_best || (d_c == d_best && (c & 1) == 0)) best = c;
    }
    ASSERT_EQ(code & 0x7F, best) << "value " << value;
    ASSERT_EQ(code >> 7, std::signbit(value) ? 1 : 0);
  }
}

TEST(CompressionCast, RoundTripErrorBounds) {
  const std::vector<float> input = gradient_like(10000, 1);
  const auto half = decode_to_vector(encode_to_vector(config_for(Codec::kFloat16), input));
  const auto brain = decode_to_vector(encode_to_vector(config_for(Codec::kBFloat16), input));
  for (size_t i = 0; i < input.size(); ++i) {
    const float x = input[i];
    // Relative half-ulp bounds in the normal ranges; absolute below them.
    EXPECT_LE(std::fabs(x - half[i]), std::max(std::fabs(x) * 0x1p-11f, 0x1p-25f)) << i;
    EXPECT_LE(std::fabs(x - brain[i]), std::fabs(x) * 0x1p-8f) << i;
  }
}

TEST(CompressionInt8, NearestRoundingErrorIsAtMostHalfScale) {
  const CodecConfig config = config_for(Codec::kInt8Block);
  const std::vector<float> input = gradient_like(100003, 2);
  const auto payload = encode_to_vector(config, input);
  const auto output = decode_to_vector(payload);
  for (size_t i = 0; i < input.size(); ++i) {
    const float scale = scale_of_block(payload, i / kDefaultBlockSize);
    const float absmax = scale * 127.0f;
    const float bound = 0.5f * scale + absmax * 0x1p-21f;  // float rounding of x/scale and q*scale
    ASSERT_LE(std::fabs(input[i] - output[i]), bound) << "element " << i;
  }
}

TEST(CompressionInt8, CodesAreTheNearestIntegers) {
  const std::vector<float> input = gradient_like(4096, 3);
  const auto payload = encode_to_vector(config_for(Codec::kInt8Block), input);
  const size_t blocks = (input.size() + kDefaultBlockSize - 1) / kDefaultBlockSize;
  const auto* codes = reinterpret_cast<const int8_t*>(payload.data() + kHeaderSize + 4 * blocks);
  for (size_t i = 0; i < input.size(); ++i) {
    const double exact = input[i] / static_cast<double>(scale_of_block(payload, i / 256));
    const double fraction = exact - std::floor(exact);
    if (std::fabs(fraction - 0.5) < 1e-4) continue;  // too close to a tie to judge in double
    ASSERT_EQ(codes[i], static_cast<int8_t>(std::lround(exact))) << i;
    ASSERT_NE(codes[i], -128);
  }
}

TEST(CompressionInt8, StochasticRoundingIsUnbiasedAndSeeded) {
  CodecConfig config = config_for(Codec::kInt8Block);
  config.stochastic_rounding = true;
  // One block: the largest element fixes the scale at 1/127 * 1.27 = 0.01; others sit between
  // code points.
  std::vector<float> input = {1.27f, 0.0031f, -0.0049f, 0.5555f, -0.777f, 0.00001f};
  input.resize(64, 0.1234f);
  std::vector<double> sum(input.size(), 0.0);
  constexpr int kTrials = 4000;
  for (int trial = 0; trial < kTrials; ++trial) {
    config.seed = static_cast<uint64_t>(trial) * 0x9E3779B97F4A7C15ull;
    const auto payload = encode_to_vector(config, input);
    const auto output = decode_to_vector(payload);
    const float scale = scale_of_block(payload, 0);
    for (size_t i = 0; i < input.size(); ++i) {
      ASSERT_LT(std::fabs(input[i] - output[i]), scale * (1.0f + 0x1p-16f));
      sum[i] += output[i];
    }
  }
  const double scale = 1.27 / 127;
  for (size_t i = 0; i < input.size(); ++i) {
    // Standard deviation of one draw is at most scale/2: allow 5 sigma of the mean.
    EXPECT_NEAR(sum[i] / kTrials, input[i], 5 * 0.5 * scale / std::sqrt(kTrials)) << i;
  }
  config.seed = 42;
  EXPECT_EQ(encode_to_vector(config, input), encode_to_vector(config, input));
  CodecConfig other = config;
  other.seed = 43;
  EXPECT_NE(encode_to_vector(config, input), encode_to_vector(other, input));
}

TEST(CompressionFloat8, RoundTripErrorBound) {
  const std::vector<float> input = gradient_like(100003, 4);
  const auto payload = encode_to_vector(config_for(Codec::kFloat8Block), input);
  const auto output = decode_to_vector(payload);
  for (size_t i = 0; i < input.size(); ++i) {
    const float scale = scale_of_block(payload, i / kDefaultBlockSize);
    const float absmax = scale * 448.0f;
    // e4m3 keeps 3 mantissa bits: half an ulp is 2^-4 relative in the normal range, 2^-10 code
    // units in the subnormal range; plus float rounding of the scaling.
    const float bound =
        std::max(std::fabs(input[i]) * 0x1p-4f, scale * 0x1p-10f) + absmax * 0x1p-21f;
    ASSERT_LE(std::fabs(input[i] - output[i]), bound) << "element " << i;
  }
}

TEST(CompressionSign, DecodesToSignTimesMeanMagnitude) {
  CodecConfig config = config_for(Codec::kSignBlock);
  const std::vector<float> input = gradient_like(100003, 5);
  const auto output = decode_to_vector(encode_to_vector(config, input));
  for (size_t begin = 0; begin < input.size(); begin += kDefaultBlockSize) {
    const size_t end = std::min(input.size(), begin + kDefaultBlockSize);
    double mean = 0;
    for (size_t i = begin; i < end; ++i) mean += std::fabs(input[i]);
    mean /= static_cast<double>(end - begin);
    for (size_t i = begin; i < end; ++i) {
      ASSERT_NEAR(std::fabs(output[i]), mean, mean * 1e-5) << i;
      ASSERT_EQ(output[i] < 0, input[i] < 0) << i;
    }
  }
}

// Reference top-k: sort by (magnitude descending, index ascending), keep k, order by index.
std::vector<uint32_t> reference_topk(const std::vector<float>& input, size_t k) {
  std::vector<uint32_t> order(input.size());
  std::iota(order.begin(), order.end(), 0u);
  std::stable_sort(order.begin(), order.end(), [&](uint32_t a, uint32_t b) {
    return math::magnitude_bits(input[a]) > math::magnitude_bits(input[b]);
  });
  order.resize(k);
  std::sort(order.begin(), order.end());
  return order;
}

void expect_topk_matches(const std::vector<float>& input, double fraction) {
  CodecConfig config = config_for(Codec::kTopK);
  config.topk_fraction = fraction;
  const auto payload = encode_to_vector(config, input);
  const size_t k = inspect(payload).aux;
  ASSERT_EQ(k, std::max<size_t>(1, static_cast<size_t>(std::ceil(fraction * input.size()))));
  const auto expected = reference_topk(input, k);
  std::vector<uint32_t> indices(k);
  std::memcpy(indices.data(), payload.data() + kHeaderSize, 4 * k);
  ASSERT_EQ(indices, expected);
  const auto output = decode_to_vector(payload);
  std::vector<bool> kept(input.size(), false);
  for (uint32_t index : expected) kept[index] = true;
  for (size_t i = 0; i < input.size(); ++i) {
    ASSERT_EQ(bits(output[i]), kept[i] ? bits(input[i]) : 0u) << i;
  }
}

TEST(CompressionTopK, PicksTheTrueLargest) {
  expect_topk_matches(gradient_like(100003, 6), 0.01);
  expect_topk_matches(gradient_like(5000, 7), 0.5);
  expect_topk_matches(gradient_like(777, 8), 1.0);
  expect_topk_matches(gradient_like(10, 9), 1e-9);  // k rounds up to 1
}

TEST(CompressionTopK, TiesAreBrokenByIndex) {
  std::vector<float> input(1000, 0.5f);
  for (size_t i = 0; i < input.size(); i += 3) input[i] = -0.5f;  // same magnitude, either sign
  input[500] = 2.0f;
  input[900] = -3.0f;
  expect_topk_matches(input, 0.05);
  std::vector<float> zeros(300, 0.0f);
  expect_topk_matches(zeros, 0.1);
}

TEST(CompressionTopK, NaNRanksAboveEverything) {
  std::vector<float> input = gradient_like(1000, 10);
  input[123] = std::numeric_limits<float>::quiet_NaN();
  input[456] = -std::numeric_limits<float>::infinity();
  expect_topk_matches(input, 0.01);
}

TEST(CompressionSizes, CompressionRatiosAgainstFloat32) {
  constexpr size_t kCount = size_t{1} << 22;
  const double raw = 4.0 * kCount;
  auto ratio = [&](CodecConfig config) { return raw / encoded_size(config, kCount); };
  EXPECT_NEAR(ratio(config_for(Codec::kFloat16)), 2.0, 1e-3);
  EXPECT_NEAR(ratio(config_for(Codec::kBFloat16)), 2.0, 1e-3);
  EXPECT_GE(ratio(config_for(Codec::kInt8Block)), 3.9);
  EXPECT_GE(ratio(config_for(Codec::kFloat8Block)), 3.9);
  EXPECT_GE(ratio(config_for(Codec::kSignBlock)), 25.0);
  CodecConfig topk = config_for(Codec::kTopK);
  topk.topk_fraction = 0.01;
  EXPECT_GE(ratio(topk), 30.0);
  // encoded_size is exact: what encode writes.
  const std::vector<float> input = gradient_like(12345, 11);
  for (const CodecConfig& config : testing::all_configs()) {
    std::vector<uint8_t> buffer(encoded_size(config, input.size()) + 100);
    EXPECT_EQ(encode(config, input, buffer), encoded_size(config, input.size()));
  }
}

TEST(CompressionAccumulate, DecodeAccumulateAddsTheDecodedValues) {
  const std::vector<float> input = gradient_like(20011, 12);
  const std::vector<float> start = gradient_like(20011, 13);
  for (const CodecConfig& config : testing::all_configs()) {
    const auto payload = encode_to_vector(config, input);
    const auto decoded = decode_to_vector(payload);
    std::vector<float> accumulator = start;
    decode_accumulate(payload, accumulator);
    for (size_t i = 0; i < input.size(); ++i) {
      // Compared as floats: top-k leaves unsent elements untouched, so a -0 stays -0 where
      // -0 + 0 would give +0.
      ASSERT_EQ(accumulator[i], start[i] + decoded[i]) << codec_name(config.codec) << " " << i;
    }
  }
}

TEST(CompressionEdges, EmptyAndOddSizes) {
  for (const CodecConfig& config : testing::all_configs()) {
    for (size_t count : {size_t{0}, size_t{1}, size_t{31}, size_t{33}, size_t{257}}) {
      const std::vector<float> input = gradient_like(count, 14);
      const auto payload = encode_to_vector(config, input);
      EXPECT_EQ(inspect(payload).element_count, count);
      EXPECT_EQ(decode_to_vector(payload).size(), count);
    }
  }
}

TEST(CompressionEdges, NonFiniteBlocksDecodeToNaN) {
  std::vector<float> input = gradient_like(1024, 15);
  input[300] = std::numeric_limits<float>::infinity();   // block 1 of 256-element blocks
  input[700] = std::numeric_limits<float>::quiet_NaN();  // block 2
  for (Codec codec : {Codec::kInt8Block, Codec::kFloat8Block, Codec::kSignBlock}) {
    const auto output = decode_to_vector(encode_to_vector(config_for(codec), input));
    for (size_t i = 0; i < input.size(); ++i) {
      const bool poisoned = i >= 256 && i < 768;
      ASSERT_EQ(std::isnan(output[i]) || std::isinf(output[i]), poisoned)
          << codec_name(codec) << " element " << i;
    }
  }
  const auto half = decode_to_vector(encode_to_vector(config_for(Codec::kFloat16), input));
  EXPECT_TRUE(std::isinf(half[300]));
  EXPECT_TRUE(std::isnan(half[700]));
}

TEST(CompressionEdges, InvalidConfigurationsThrow) {
  CodecConfig config = config_for(Codec::kTopK);
  for (double fraction : {0.0, -0.5, 1.5, std::nan("")}) {
    config.topk_fraction = fraction;
    EXPECT_THROW(encoded_size(config, 100), CompressionError);
  }
  config = config_for(Codec::kInt8Block);
  for (uint32_t block : {16u, 48u, (1u << 21)}) {
    config.block_size = block;
    EXPECT_THROW(encoded_size(config, 100), CompressionError);
  }
  config = config_for(Codec::kFloat8Block);
  config.stochastic_rounding = true;
  EXPECT_THROW(encoded_size(config, 100), CompressionError);
  config = config_for(static_cast<Codec>(99));
  EXPECT_THROW(encoded_size(config, 100), CompressionError);
  const std::vector<float> input(100, 1.0f);
  std::vector<uint8_t> small(encoded_size(config_for(Codec::kInt8Block), 100) - 1);
  EXPECT_THROW(encode(config_for(Codec::kInt8Block), input, small), CompressionError);
  std::vector<float> residual(99);
  std::vector<uint8_t> buffer(1000);
  EXPECT_THROW(encode_with_error_feedback(config_for(Codec::kInt8Block), input, residual, buffer),
               CompressionError);
  const auto payload = encode_to_vector(config_for(Codec::kInt8Block), input);
  std::vector<float> wrong_size(101);
  EXPECT_THROW(decode(payload, wrong_size), CompressionError);
}

// The per-instruction-set copies of the loops (baseline SSE2, AVX2) must give identical bytes.
TEST(CompressionCpuVariants, EveryVariantGivesIdenticalBytes) {
  const auto tables = cpu::runnable_kernels();
  if (tables.size() < 2) GTEST_SKIP() << "only one instruction-set variant runs here";
  const std::vector<float> input = gradient_like(40009, 16);
  const std::vector<float> start = gradient_like(40009, 17);
  for (const CodecConfig& config : testing::all_configs()) {
    if (config.codec == Codec::kTopK) continue;  // one variant only
    const EncodePlan plan = plan_encode(config, input.size(), SIZE_MAX);
    const ResolvedParams& params = plan.params;
    const Layout& layout = plan.layout;
    std::vector<std::vector<uint8_t>> payloads;
    std::vector<std::vector<float>> residuals;
    std::vector<std::vector<float>> decoded;
    for (const cpu::KernelTable* table : tables) {
      std::vector<uint8_t> payload(layout.total_size, 0);
      std::vector<float> residual = start;
      const CodecDescriptor& codec = describe(params.codec);
      (table->*codec.cpu_encode)(params, config.seed, input.data(), residual.data(), input.size(),
                                 payload.data(), layout);
      std::vector<float> output = start;
      (table->*codec.cpu_decode)(plan.header, payload.data(), layout, input.size(), output.data(),
                                 true);
      payloads.push_back(payload);
      residuals.push_back(residual);
      decoded.push_back(output);
    }
    for (size_t v = 1; v < tables.size(); ++v) {
      EXPECT_EQ(payloads[v], payloads[0]) << codec_name(config.codec);
      EXPECT_EQ(std::memcmp(residuals[v].data(), residuals[0].data(), 4 * input.size()), 0);
      EXPECT_EQ(std::memcmp(decoded[v].data(), decoded[0].data(), 4 * input.size()), 0);
    }
  }
}

// Summing a payload tile by tile (as the compressed allreduce does) gives the same bits as one
// decode_accumulate of the whole payload, for tiles that start on a block and end anywhere.
TEST(CompressionRange, TilesAddExactlyWhatTheWholeDecodeAdds) {
  const auto input = gradient_like(5000, 3);
  const auto base = gradient_like(input.size(), 4);
  for (Codec codec : {Codec::kFloat16, Codec::kBFloat16, Codec::kInt8Block, Codec::kFloat8Block}) {
    const auto payload = encode_to_vector(config_for(codec), input);
    std::vector<float> whole = base;
    decode_accumulate(payload, whole);
    std::vector<float> tiled = base;
    for (size_t first = 0; first < input.size(); first += 512) {
      const size_t length = std::min<size_t>(512, input.size() - first);  // the last ends mid-block
      decode_accumulate_range(payload, first, std::span<float>(tiled).subspan(first, length));
    }
    EXPECT_EQ(std::memcmp(tiled.data(), whole.data(), 4 * input.size()), 0) << codec_name(codec);
  }
}

TEST(CompressionRange, RefusesRangesItCannotDecode) {
  const auto input = gradient_like(1000, 5);
  std::vector<float> out(100);
  const auto int8 = encode_to_vector(config_for(Codec::kInt8Block), input);
  EXPECT_THROW(decode_accumulate_range(int8, 100, out), CompressionError);  // not on a block
  EXPECT_THROW(decode_accumulate_range(int8, 960, out), CompressionError);  // past the end
  EXPECT_THROW(decode_accumulate_range(int8, 2000, out), CompressionError);
  const auto sign = encode_to_vector(config_for(Codec::kSignBlock), input);
  EXPECT_THROW(decode_accumulate_range(sign, 0, out), CompressionError);
  std::vector<uint8_t> truncated(int8.begin(), int8.begin() + 40);
  EXPECT_THROW(decode_accumulate_range(truncated, 0, out), CompressionError);
}

}  // namespace
}  // namespace torchwan::compression
