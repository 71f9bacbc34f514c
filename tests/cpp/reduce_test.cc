// Reduction kernels and scalar conversions against independent references: integer results
// computed in 128-bit arithmetic, float results in double, narrow floats rounded by a generic
// round-to-nearest-even on a grid (round_to_format below) and spot-checked against known bit
// patterns (ties, subnormals, overflow, NaN).
#include "csrc/reduce.h"

#include <gtest/gtest.h>

#include <chrono>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <limits>
#include <random>
#include <stdexcept>
#include <vector>

#include "csrc/dtype.h"
#include "csrc/float_conversions.h"
#include "reduction_cases.h"

namespace torchwan::engine {
namespace {

using floats::bits_of;
using floats::float_from_bits;

constexpr DataType kAllTypes[] = {
    DataType::kBool,       DataType::kUInt8,     DataType::kInt8,      DataType::kInt16,
    DataType::kInt32,      DataType::kInt64,     DataType::kFloat16,   DataType::kBFloat16,
    DataType::kFloat32,    DataType::kFloat64,   DataType::kComplex64, DataType::kComplex128,
    DataType::kFloat8E4M3, DataType::kFloat8E5M2};
constexpr ReduceOp kAllOps[] = {ReduceOp::kSum,  ReduceOp::kProduct, ReduceOp::kMin, ReduceOp::kMax,
                                ReduceOp::kBand, ReduceOp::kBor,     ReduceOp::kBxor};

const double kNaN = std::numeric_limits<double>::quiet_NaN();
const double kInf = std::numeric_limits<double>::infinity();

// ---------------------------------------------------------------- dtype metadata

TEST(ReduceDtype, ElementSizesNamesAndKinds) {
  EXPECT_EQ(element_size(DataType::kBool), 1u);
  EXPECT_EQ(element_size(DataType::kInt16), 2u);
  EXPECT_EQ(element_size(DataType::kBFloat16), 2u);
  EXPECT_EQ(element_size(DataType::kFloat32), 4u);
  EXPECT_EQ(element_size(DataType::kComplex64), 8u);
  EXPECT_EQ(element_size(DataType::kComplex128), 16u);
  EXPECT_EQ(element_size(DataType::kFloat8E4M3), 1u);
  EXPECT_STREQ(dtype_name(DataType::kBFloat16), "bfloat16");
  EXPECT_STREQ(dtype_name(DataType::kFloat8E4M3), "float8_e4m3fn");
  EXPECT_STREQ(reduce_op_name(ReduceOp::kBxor), "BXOR");
  EXPECT_TRUE(is_floating(DataType::kFloat8E5M2));
  EXPECT_TRUE(is_floating(DataType::kComplex64));
  EXPECT_FALSE(is_floating(DataType::kBool));
  EXPECT_FALSE(is_floating(DataType::kInt64));
  EXPECT_THROW(element_size(static_cast<DataType>(200)), std::invalid_argument);
}

TEST(ReduceDtype, SupportTableAndUnsupportedCombinationsThrow) {
  for (DataType dtype : kAllTypes) {
    const bool complex = dtype == DataType::kComplex64 || dtype == DataType::kComplex128;
    const bool integral = !is_floating(dtype);
    for (ReduceOp op : kAllOps) {
      bool expected = true;
      if (op == ReduceOp::kMin || op == ReduceOp::kMax) expected = !complex;
      if (op == ReduceOp::kBand || op == ReduceOp::kBor || op == ReduceOp::kBxor) {
        expected = integral;
      }
      EXPECT_EQ(reduce_supported(dtype, op), expected)
          << dtype_name(dtype) << " " << reduce_op_name(op);
      uint8_t acc[16] = {};
      const uint8_t in[16] = {};
      if (expected) {
        EXPECT_NO_THROW(reduce_into(dtype, op, acc, in, 1));
      } else {
        EXPECT_THROW(reduce_into(dtype, op, acc, in, 1), std::invalid_argument);
        EXPECT_THROW(reduce_into(dtype, op, acc, in, 0), std::invalid_argument);
      }
    }
  }
}

// ---------------------------------------------------------------- integers

template <typename T>
void check_integer_type(DataType dtype) {
  using Limits = std::numeric_limits<T>;
  const std::vector<T> values = {0,
                                 1,
                                 2,
                                 3,
                                 static_cast<T>(100),
                                 static_cast<T>(-1),
                                 static_cast<T>(-77),
                                 Limits::min(),
                                 static_cast<T>(Limits::min() + 1),
                                 Limits::max(),
                                 static_cast<T>(Limits::max() - 1),
                                 static_cast<T>(Limits::max() / 3)};
  std::vector<T> acc;
  std::vector<T> in;
  for (T a : values) {
    for (T b : values) {
      acc.push_back(a);
      in.push_back(b);
    }
  }
  for (ReduceOp op : kAllOps) {
    std::vector<T> result = acc;
    reduce_into(dtype, op, result.data(), in.data(), result.size());
    for (size_t i = 0; i < result.size(); ++i) {
      ASSERT_EQ(result[i], test_data::fold_integer(op, acc[i], in[i]))
          << dtype_name(dtype) << " " << reduce_op_name(op) << " of " << +acc[i] << " and "
          << +in[i];
    }
  }
}

TEST(ReduceIntegers, EveryOpMatchesWideArithmeticWithWraparound) {
  check_integer_type<uint8_t>(DataType::kUInt8);
  check_integer_type<int8_t>(DataType::kInt8);
  check_integer_type<int16_t>(DataType::kInt16);
  check_integer_type<int32_t>(DataType::kInt32);
  check_integer_type<int64_t>(DataType::kInt64);
}

TEST(ReduceIntegers, KnownWrapAroundValues) {
  int8_t a8[] = {100, 16, -128};
  const int8_t b8[] = {100, 16, -1};
  reduce_into(DataType::kInt8, ReduceOp::kSum, a8, b8, 1);
  EXPECT_EQ(a8[0], -56);
  reduce_into(DataType::kInt8, ReduceOp::kProduct, a8 + 1, b8 + 1, 2);
  EXPECT_EQ(a8[1], 0);
  EXPECT_EQ(a8[2], -128);  // -128 * -1 wraps back to -128
  uint8_t u8 = 200;
  const uint8_t u8_in = 100;
  reduce_into(DataType::kUInt8, ReduceOp::kSum, &u8, &u8_in, 1);
  EXPECT_EQ(u8, 44);
  int32_t i32 = std::numeric_limits<int32_t>::max();
  const int32_t one = 1;
  reduce_into(DataType::kInt32, ReduceOp::kSum, &i32, &one, 1);
  EXPECT_EQ(i32, std::numeric_limits<int32_t>::min());
  int64_t i64 = int64_t{1} << 62;
  const int64_t four = 4;
  reduce_into(DataType::kInt64, ReduceOp::kProduct, &i64, &four, 1);
  EXPECT_EQ(i64, 0);
}

TEST(ReduceIntegers, LongArraysAcrossVectorWidths) {
  // Odd lengths exercise the vector loop's remainder handling.
  for (size_t count : {1u, 15u, 16u, 17u, 1023u}) {
    std::vector<int32_t> acc(count);
    std::vector<int32_t> in(count);
    for (size_t i = 0; i < count; ++i) {
      acc[i] = static_cast<int32_t>(i * 7);
      in[i] = static_cast<int32_t>(1000 - i);
    }
    reduce_into(DataType::kInt32, ReduceOp::kMax, acc.data(), in.data(), count);
    for (size_t i = 0; i < count; ++i) {
      ASSERT_EQ(acc[i],
                std::max<int32_t>(static_cast<int32_t>(i * 7), static_cast<int32_t>(1000 - i)));
    }
  }
}

// ---------------------------------------------------------------- bool

TEST(ReduceBool, LogicalTruthTables) {
  const uint8_t acc0[] = {0, 0, 1, 1};
  const uint8_t in[] = {0, 1, 0, 1};
  struct Case {
    ReduceOp op;
    uint8_t expected[4];
  };
  const Case cases[] = {{ReduceOp::kSum, {0, 1, 1, 1}}, {ReduceOp::kMax, {0, 1, 1, 1}},
                        {ReduceOp::kBor, {0, 1, 1, 1}}, {ReduceOp::kProduct, {0, 0, 0, 1}},
                        {ReduceOp::kMin, {0, 0, 0, 1}}, {ReduceOp::kBand, {0, 0, 0, 1}},
                        {ReduceOp::kBxor, {0, 1, 1, 0}}};
  for (const Case& c : cases) {
    uint8_t acc[4];
    std::memcpy(acc, acc0, 4);
    reduce_into(DataType::kBool, c.op, acc, in, 4);
    for (int i = 0; i < 4; ++i) {
      EXPECT_EQ(acc[i], c.expected[i]) << reduce_op_name(c.op) << " case " << i;
    }
  }
  EXPECT_THROW(scale(DataType::kBool, nullptr, 0, 0.5), std::invalid_argument);
}

// ---------------------------------------------------------------- float32 / float64

double reference_float_op(ReduceOp op, double a, double b) {
  switch (op) {
    case ReduceOp::kSum:
      return a + b;
    case ReduceOp::kProduct:
      return a * b;
    case ReduceOp::kMin:
      return (std::isnan(a) || std::isnan(b)) ? kNaN : std::min(a, b);
    case ReduceOp::kMax:
      return (std::isnan(a) || std::isnan(b)) ? kNaN : std::max(a, b);
    default:
      return kNaN;
  }
}

// Same value, or both NaN.
::testing::AssertionResult same_value(double actual, double expected) {
  if (std::isnan(actual) && std::isnan(expected)) return ::testing::AssertionSuccess();
  if (actual == expected) return ::testing::AssertionSuccess();
  return ::testing::AssertionFailure() << actual << " != expected " << expected;
}

template <typename T>
void check_float_type(DataType dtype) {
  const std::vector<double> values = {0.0,   -0.0, 1.0,   -1.5, 3.25,  1e-3, 1e30,
                                      -1e30, kInf, -kInf, kNaN, 1e-40, 7.0,  -2.0};
  std::vector<T> acc;
  std::vector<T> in;
  for (double a : values) {
    for (double b : values) {
      acc.push_back(static_cast<T>(a));
      in.push_back(static_cast<T>(b));
    }
  }
  for (ReduceOp op : {ReduceOp::kSum, ReduceOp::kProduct, ReduceOp::kMin, ReduceOp::kMax}) {
    std::vector<T> result = acc;
    reduce_into(dtype, op, result.data(), in.data(), result.size());
    for (size_t i = 0; i < result.size(); ++i) {
      // Sums and products of two floats computed in double and rounded once are exact
      // references (double has more than 2 * 24 + 2 bits).
      const auto expected = static_cast<T>(reference_float_op(op, acc[i], in[i]));
      ASSERT_TRUE(same_value(result[i], expected))
          << dtype_name(dtype) << " " << reduce_op_name(op) << " of " << acc[i] << " and " << in[i];
    }
  }
}

TEST(ReduceFloats, Float32AndFloat64MatchDoubleReference) {
  check_float_type<float>(DataType::kFloat32);
  check_float_type<double>(DataType::kFloat64);
}

TEST(ReduceFloats, MinMaxPropagateNaNFromEitherSide) {
  float acc[] = {std::nanf(""), 1.0f, 2.0f};
  const float in[] = {1.0f, std::nanf(""), 1.0f};
  reduce_into(DataType::kFloat32, ReduceOp::kMin, acc, in, 3);
  EXPECT_TRUE(std::isnan(acc[0]));
  EXPECT_TRUE(std::isnan(acc[1]));
  EXPECT_EQ(acc[2], 1.0f);
}

// ---------------------------------------------------------------- complex

TEST(ReduceComplex, SumAndProductFollowTheTextbookFormula) {
  float acc[] = {1, 2, 0.5f, -1};
  const float in[] = {3, 4, 2, 2};
  reduce_into(DataType::kComplex64, ReduceOp::kProduct, acc, in, 2);
  EXPECT_EQ(acc[0], -5.0f);  // (1+2i)(3+4i) = -5+10i
  EXPECT_EQ(acc[1], 10.0f);
  EXPECT_EQ(acc[2], 3.0f);  // (0.5-i)(2+2i) = 3-1i
  EXPECT_EQ(acc[3], -1.0f);
  double acc128[] = {1.5, -2};
  const double in128[] = {0.25, 8};
  reduce_into(DataType::kComplex128, ReduceOp::kSum, acc128, in128, 1);
  EXPECT_EQ(acc128[0], 1.75);
  EXPECT_EQ(acc128[1], 6.0);
  EXPECT_FALSE(reduce_supported(DataType::kComplex64, ReduceOp::kMin));
  EXPECT_THROW(reduce_into(DataType::kComplex128, ReduceOp::kMax, acc128, in128, 1),
               std::invalid_argument);
}

// ---------------------------------------------------------------- narrow floats

// A binary floating-point format: significand bits (with the implicit one), the exponent of its
// smallest normal number, its largest finite value, and what overflow gives.
struct FormatSpec {
  const char* name;
  int significand_bits;
  int min_normal_exponent;
  double max_finite;
  bool saturates;  // e4m3fn has no infinity: torch clamps overflow and infinity to +-448
};
constexpr FormatSpec kHalf{"float16", 11, -14, 65504.0, false};
constexpr FormatSpec kBFloat16{"bfloat16", 8, -126, 0x1.FEp127, false};
constexpr FormatSpec kE4m3fn{"e4m3fn", 4, -6, 448.0, true};
constexpr FormatSpec kE5m2{"e5m2", 3, -14, 57344.0, false};

// Rounds `x` to the nearest value of the format (ties to even), independently of the engine's
// bit tricks: divide by the spacing of representable values at x's magnitude and let
// std::nearbyint (round-half-even in the default rounding mode) pick the neighbour.
double round_to_format(double x, const FormatSpec& format) {
  if (std::isnan(x)) return kNaN;
  if (std::isinf(x)) return format.saturates ? std::copysign(format.max_finite, x) : x;
  if (x == 0.0) return x;
  int exponent = 0;
  std::frexp(x, &exponent);  // |x| in [2^(exponent-1), 2^exponent)
  const int leading = std::max(exponent - 1, format.min_normal_exponent);
  const double spacing = std::ldexp(1.0, leading - (format.significand_bits - 1));
  const double rounded = std::nearbyint(x / spacing) * spacing;
  if (std::fabs(rounded) > format.max_finite) {
    return std::copysign(format.saturates ? format.max_finite : kInf, x);
  }
  return rounded;
}

// Interesting floats: powers of two around every format's limits, exact ties, random bits.
std::vector<float> probe_floats() {
  std::vector<float> probes = {0.0f,
                               -0.0f,
                               1.0f,
                               -1.0f,
                               65504.0f,
                               65519.0f,
                               65520.0f,
                               448.0f,
                               464.0f,
                               465.0f,
                               479.0f,
                               480.0f,
                               57344.0f,
                               61439.0f,
                               61440.0f,
                               std::numeric_limits<float>::max(),
                               std::numeric_limits<float>::denorm_min(),
                               std::numeric_limits<float>::infinity(),
                               -std::numeric_limits<float>::infinity(),
                               std::nanf("")};
  for (int e = -30; e <= 20; ++e) {
    for (float m : {1.0f, 1.0625f, 1.125f, 1.25f, 1.5f, 1.75f, 1.9375f}) {
      probes.push_back(std::ldexp(m, e));
      probes.push_back(-std::ldexp(m, e));
    }
  }
  std::mt19937 random(7);
  for (int i = 0; i < 200000; ++i) {
    const float value = float_from_bits(static_cast<uint32_t>(random()));
    probes.push_back(value);
    // Numbers near 1 with few significant bits hit ties in every narrow format.
    probes.push_back(1.0f + static_cast<float>(random() % 4096) / 4096.0f);
  }
  return probes;
}

template <typename Bits>
void check_conversion(const FormatSpec& format, Bits (*encode)(float), float (*decode)(Bits)) {
  for (float value : probe_floats()) {
    const double expected = round_to_format(value, format);
    const double actual = decode(encode(value));
    ASSERT_TRUE(same_value(actual, expected))
        << format.name << " of " << value << " (bits 0x" << std::hex << bits_of(value) << ")";
    if (expected == 0.0) {
      ASSERT_EQ(std::signbit(actual), std::signbit(value)) << format.name << " sign of zero";
    }
  }
}

TEST(NarrowFloats, ConversionsRoundToNearestEvenLikeTheReference) {
  check_conversion<uint16_t>(kHalf, floats::float_to_half, floats::half_to_float);
  check_conversion<uint16_t>(kBFloat16, floats::float_to_bfloat16, floats::bfloat16_to_float);
  check_conversion<uint8_t>(kE4m3fn, floats::float_to_e4m3fn, floats::e4m3fn_to_float);
  check_conversion<uint8_t>(kE5m2, floats::float_to_e5m2, floats::e5m2_to_float);
}

TEST(NarrowFloats, EveryNonNaNValueRoundTrips) {
  for (uint32_t bits = 0; bits < 65536; ++bits) {
    const auto half = static_cast<uint16_t>(bits);
    const float value = floats::half_to_float(half);
    if (std::isnan(value)) {
      EXPECT_EQ(half & 0x7C00u, 0x7C00u);
      EXPECT_TRUE(std::isnan(floats::half_to_float(floats::float_to_half(value))));
    } else {
      ASSERT_EQ(floats::float_to_half(value), half);
    }
    const float bvalue = floats::bfloat16_to_float(half);
    if (!std::isnan(bvalue)) {
      ASSERT_EQ(floats::float_to_bfloat16(bvalue), half);
    }
  }
  for (uint32_t bits = 0; bits < 256; ++bits) {
    const auto byte = static_cast<uint8_t>(bits);
    const float e4 = floats::e4m3fn_to_float(byte);
    EXPECT_EQ(std::isnan(e4), (byte & 0x7F) == 0x7F);
    if (!std::isnan(e4)) {
      ASSERT_EQ(floats::float_to_e4m3fn(e4), byte);
    }
    const float e5 = floats::e5m2_to_float(byte);
    if (!std::isnan(e5)) {
      ASSERT_EQ(floats::float_to_e5m2(e5), byte);
    }
  }
}

TEST(NarrowFloats, KnownHalfBitPatterns) {
  EXPECT_EQ(floats::float_to_half(1.0f), 0x3C00);
  EXPECT_EQ(floats::float_to_half(-2.0f), 0xC000);
  EXPECT_EQ(floats::float_to_half(65504.0f), 0x7BFF);
  EXPECT_EQ(floats::float_to_half(65519.0f), 0x7BFF);
  EXPECT_EQ(floats::float_to_half(65520.0f), 0x7C00);         // tie with 65536 rounds to even: inf
  EXPECT_EQ(floats::float_to_half(1.0f + 0x1p-11f), 0x3C00);  // tie, down to even
  EXPECT_EQ(floats::float_to_half(1.0f + 3 * 0x1p-11f), 0x3C02);  // tie, up to even
  EXPECT_EQ(floats::float_to_half(0x1p-24f), 0x0001);             // smallest subnormal
  EXPECT_EQ(floats::float_to_half(0x1p-25f), 0x0000);             // tie with zero
  EXPECT_EQ(floats::float_to_half(0x1.8p-25f), 0x0001);
  EXPECT_EQ(floats::float_to_half(0x1p-14f), 0x0400);  // smallest normal
  EXPECT_EQ(floats::float_to_half(-0.0f), 0x8000);
  EXPECT_EQ(floats::float_to_half(std::numeric_limits<float>::infinity()), 0x7C00);
  EXPECT_EQ(floats::float_to_half(std::nanf("")), 0x7E00);
  EXPECT_EQ(floats::float_to_half(-std::nanf("")), 0xFE00);
  EXPECT_EQ(floats::float_to_half(float_from_bits(0x7FC12345u)), 0x7E09);  // payload kept (F16C)
  EXPECT_EQ(floats::half_to_float(0x0001), 0x1p-24f);
  EXPECT_EQ(floats::half_to_float(0x7BFF), 65504.0f);
  EXPECT_TRUE(std::isinf(floats::half_to_float(0x7C00)));
  EXPECT_TRUE(std::isnan(floats::half_to_float(0x7E01)));
  EXPECT_TRUE(std::signbit(floats::half_to_float(0x8000)));
}

TEST(NarrowFloats, KnownBFloat16BitPatterns) {
  EXPECT_EQ(floats::float_to_bfloat16(1.0f), 0x3F80);
  EXPECT_EQ(floats::float_to_bfloat16(float_from_bits(0x3F808000u)), 0x3F80);  // tie, even
  EXPECT_EQ(floats::float_to_bfloat16(float_from_bits(0x3F818000u)), 0x3F82);  // tie, even
  EXPECT_EQ(floats::float_to_bfloat16(float_from_bits(0x3F808001u)), 0x3F81);
  EXPECT_EQ(floats::float_to_bfloat16(float_from_bits(0x00018000u)), 0x0002);  // subnormal tie
  EXPECT_EQ(floats::float_to_bfloat16(std::numeric_limits<float>::max()), 0x7F80);
  EXPECT_EQ(floats::float_to_bfloat16(-std::numeric_limits<float>::infinity()), 0xFF80);
  EXPECT_EQ(floats::float_to_bfloat16(std::nanf("")), 0x7FC0);
  EXPECT_EQ(floats::float_to_bfloat16(-std::nanf("")), 0x7FC0);  // torch drops the NaN sign
  EXPECT_EQ(floats::bfloat16_to_float(0x4049), 3.140625f);
}

TEST(NarrowFloats, KnownFloat8BitPatterns) {
  EXPECT_EQ(floats::float_to_e4m3fn(1.0f), 0x38);
  EXPECT_EQ(floats::float_to_e4m3fn(448.0f), 0x7E);
  EXPECT_EQ(floats::float_to_e4m3fn(464.0f), 0x7E);  // tie with 480 (NaN code) rounds to even
  EXPECT_EQ(floats::float_to_e4m3fn(465.0f), 0x7E);  // saturates, as torch 2.15 does
  EXPECT_EQ(floats::float_to_e4m3fn(-1000.0f), 0xFE);
  EXPECT_EQ(floats::float_to_e4m3fn(std::numeric_limits<float>::infinity()), 0x7E);
  EXPECT_EQ(floats::float_to_e4m3fn(std::nanf("")), 0x7F);
  EXPECT_EQ(floats::float_to_e4m3fn(-std::nanf("")), 0xFF);
  EXPECT_EQ(floats::float_to_e4m3fn(0x1p-9f), 0x01);    // smallest subnormal
  EXPECT_EQ(floats::float_to_e4m3fn(0x1p-10f), 0x00);   // tie with zero
  EXPECT_EQ(floats::float_to_e4m3fn(0x1.8p-9f), 0x02);  // tie, up to even
  EXPECT_EQ(floats::float_to_e4m3fn(0x1p-6f), 0x08);    // smallest normal
  EXPECT_EQ(floats::float_to_e4m3fn(1.0625f), 0x38);    // tie between 1 and 1.125
  EXPECT_EQ(floats::e4m3fn_to_float(0x7E), 448.0f);
  EXPECT_EQ(floats::e4m3fn_to_float(0x07), 7 * 0x1p-9f);
  EXPECT_TRUE(std::isnan(floats::e4m3fn_to_float(0xFF)));

  EXPECT_EQ(floats::float_to_e5m2(1.0f), 0x3C);
  EXPECT_EQ(floats::float_to_e5m2(57344.0f), 0x7B);
  EXPECT_EQ(floats::float_to_e5m2(61439.0f), 0x7B);
  EXPECT_EQ(floats::float_to_e5m2(61440.0f), 0x7C);  // tie with 65536 rounds to even: inf
  EXPECT_EQ(floats::float_to_e5m2(-std::numeric_limits<float>::infinity()), 0xFC);
  EXPECT_EQ(floats::float_to_e5m2(std::nanf("")), 0x7F);
  EXPECT_EQ(floats::float_to_e5m2(0x1p-16f), 0x01);
  EXPECT_EQ(floats::float_to_e5m2(0x1p-17f), 0x00);
  EXPECT_EQ(floats::e5m2_to_float(0x7B), 57344.0f);
  EXPECT_TRUE(std::isinf(floats::e5m2_to_float(0x7C)));
}

// Reduction of narrow floats: widen both to float, combine in float, round once (torch/Gloo).
template <typename Bits>
void check_narrow_reduction(DataType dtype, const FormatSpec& format, float (*decode)(Bits)) {
  std::mt19937 random(11);
  const size_t count = 4099;
  std::vector<Bits> acc(count);
  std::vector<Bits> in(count);
  for (size_t i = 0; i < count; ++i) {
    acc[i] = static_cast<Bits>(random());
    in[i] = static_cast<Bits>(random());
  }
  for (ReduceOp op : {ReduceOp::kSum, ReduceOp::kProduct, ReduceOp::kMin, ReduceOp::kMax}) {
    std::vector<Bits> result = acc;
    reduce_into(dtype, op, result.data(), in.data(), count);
    for (size_t i = 0; i < count; ++i) {
      const float a = decode(acc[i]);
      const float b = decode(in[i]);
      const float in_float = static_cast<float>(reference_float_op(op, a, b));
      const double expected = round_to_format(in_float, format);
      ASSERT_TRUE(same_value(decode(result[i]), expected))
          << format.name << " " << reduce_op_name(op) << " of " << a << " and " << b;
    }
  }
}

TEST(NarrowFloats, ReductionsMatchFloatArithmeticRoundedOnce) {
  check_narrow_reduction<uint16_t>(DataType::kFloat16, kHalf, floats::half_to_float);
  check_narrow_reduction<uint16_t>(DataType::kBFloat16, kBFloat16, floats::bfloat16_to_float);
  check_narrow_reduction<uint8_t>(DataType::kFloat8E4M3, kE4m3fn, floats::e4m3fn_to_float);
  check_narrow_reduction<uint8_t>(DataType::kFloat8E5M2, kE5m2, floats::e5m2_to_float);
}

TEST(NarrowFloats, KnownReductionResults) {
  uint16_t half[] = {0x3C00, 0x7BFF, 0x3C00};
  const uint16_t half_in[] = {0x3C00, 0x7BFF, 0x1000};  // 1, 65504, 2^-11
  reduce_into(DataType::kFloat16, ReduceOp::kSum, half, half_in, 3);
  EXPECT_EQ(half[0], 0x4000);  // 2
  EXPECT_EQ(half[1], 0x7C00);  // overflow: inf
  EXPECT_EQ(half[2], 0x3C00);  // 1 + 2^-11 is a tie: stays 1
  uint8_t e4[] = {0x7E, 0x38};
  const uint8_t e4_in[] = {0x7E, 0x7F};
  reduce_into(DataType::kFloat8E4M3, ReduceOp::kSum, e4, e4_in, 2);
  EXPECT_EQ(e4[0], 0x7E);  // 448 + 448 saturates to 448
  EXPECT_EQ(e4[1], 0x7F);  // NaN propagates
  uint16_t bf[] = {0x3F80};
  const uint16_t bf_in[] = {0x7FC0};
  reduce_into(DataType::kBFloat16, ReduceOp::kMax, bf, bf_in, 1);
  EXPECT_EQ(bf[0], 0x7FC0);
}

// ---------------------------------------------------------------- scale

TEST(Scale, FloatsMultiplyIntegersTruncateTowardZero) {
  float f[] = {1.0f, -3.0f, 0.1f};
  scale(DataType::kFloat32, f, 3, 0.25);
  EXPECT_EQ(f[0], 0.25f);
  EXPECT_EQ(f[1], -0.75f);
  EXPECT_EQ(f[2], static_cast<float>(0.1f * 0.25));
  int32_t i[] = {7, -7, 9, std::numeric_limits<int32_t>::min()};
  scale(DataType::kInt32, i, 4, 1.0 / 3.0);  // AVG over 3 ranks
  EXPECT_EQ(i[0], 2);
  EXPECT_EQ(i[1], -2);
  EXPECT_EQ(i[2], 3);
  EXPECT_EQ(i[3], std::numeric_limits<int32_t>::min() / 3);
  int64_t big[] = {(int64_t{1} << 62) + 1};
  scale(DataType::kInt64, big, 1, 0.5);
  EXPECT_EQ(big[0], int64_t{1} << 61);  // exact above 2^53
  int8_t premul[] = {10, -10};
  scale(DataType::kInt8, premul, 2, 2.5);
  EXPECT_EQ(premul[0], 25);
  EXPECT_EQ(premul[1], -25);
  uint16_t half[] = {floats::float_to_half(3.0f)};
  scale(DataType::kFloat16, half, 1, 0.5);
  EXPECT_EQ(floats::half_to_float(half[0]), 1.5f);
  float complex_pair[] = {2.0f, -4.0f};
  scale(DataType::kComplex64, complex_pair, 1, 0.5);
  EXPECT_EQ(complex_pair[0], 1.0f);
  EXPECT_EQ(complex_pair[1], -2.0f);
}

// ---------------------------------------------------------------- throughput (reported only)

TEST(ReduceThroughput, Float32Sum64MiB) {
  const size_t count = (size_t{64} << 20) / sizeof(float);
  std::vector<float> acc(count, 1.0f);
  std::vector<float> in(count, 2.0f);
  reduce_into(DataType::kFloat32, ReduceOp::kSum, acc.data(), in.data(), count);  // warm up
  const int repeats = 5;
  const auto start = std::chrono::steady_clock::now();
  for (int r = 0; r < repeats; ++r) {
    reduce_into(DataType::kFloat32, ReduceOp::kSum, acc.data(), in.data(), count);
  }
  const double seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count() / repeats;
  const double gb = static_cast<double>(count * sizeof(float)) / 1e9;
  std::printf(
      "reduce_into float32 SUM, 64 MiB: %.2f ms, %.2f GB/s of buffer (%.2f GB/s of "
      "memory traffic: 2 reads + 1 write)\n",
      seconds * 1e3, gb / seconds, 3 * gb / seconds);
  EXPECT_EQ(acc[count - 1], 1.0f + 2.0f * (repeats + 1));
}

}  // namespace
}  // namespace torchwan::engine
