// Test data shared by the engine tests: groups of ranks for each transport kind, and reduction
// inputs whose expected results are computed here independently of the engine (integer
// arithmetic, or floats chosen so that every reduction order is exact).
#pragma once

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <complex>
#include <cstdint>
#include <cstring>
#include <memory>
#include <random>
#include <string>
#include <tuple>
#include <vector>

#include "csrc/dtype.h"
#include "csrc/float_conversions.h"
#include "memory_transport.h"
#include "test_support.h"

namespace torchwan::engine::test_data {

inline constexpr DataType kAllTypes[] = {
    DataType::kBool,       DataType::kUInt8,     DataType::kInt8,      DataType::kInt16,
    DataType::kInt32,      DataType::kInt64,     DataType::kFloat16,   DataType::kBFloat16,
    DataType::kFloat32,    DataType::kFloat64,   DataType::kComplex64, DataType::kComplex128,
    DataType::kFloat8E4M3, DataType::kFloat8E5M2};
inline constexpr ReduceOp kAllOps[] = {ReduceOp::kSum, ReduceOp::kProduct, ReduceOp::kMin,
                                       ReduceOp::kMax, ReduceOp::kBand,    ReduceOp::kBor,
                                       ReduceOp::kBxor};

inline std::vector<std::unique_ptr<transport::Transport>> make_group(const std::string& kind,
                                                                     int size) {
  if (kind == "memory") return testing::connect_memory_ranks(size);
  return testing::connect_ranks(testing::loopback_options(kind), size);
}

// What an engine test runs on: a transport kind ("memory" or a real one) and a group size.
using KindAndSize = std::tuple<std::string, int>;

class KindAndSizeTest : public ::testing::TestWithParam<KindAndSize> {
 public:
  std::string kind() const { return std::get<0>(GetParam()); }
  int size() const { return std::get<1>(GetParam()); }
};

// Every transport kind with groups of 1 to 5 ranks.
inline auto every_kind_and_size() {
  return ::testing::Combine(::testing::Values("memory", "ucx", "zmq"),
                            ::testing::Values(1, 2, 3, 4, 5));
}

// "zmq_size3": names a test instance after its parameter.
inline std::string kind_and_size_name(const ::testing::TestParamInfo<KindAndSize>& info) {
  return std::get<0>(info.param) + "_size" + std::to_string(std::get<1>(info.param));
}

// ------------------------------------------------------------------ element values

inline bool is_complex(DataType dtype) {
  return dtype == DataType::kComplex64 || dtype == DataType::kComplex128;
}

// A deterministic, well-mixed integer for (seed, rank, index).
inline uint64_t mix(uint64_t seed, int rank, size_t index) {
  uint64_t x = seed * 0x9E3779B97F4A7C15ull + static_cast<uint64_t>(rank) * 0xBF58476D1CE4E5B9ull +
               index * 0x94D049BB133111EBull;
  x ^= x >> 31;
  x *= 0xD6E8FEB86659FD3Bull;
  x ^= x >> 29;
  return x;
}

// Real float values for which every reduction order gives exactly the same result in every
// floating dtype, float8 included: sums of 0/1 (at most 5), products of +-1, 2 and 1/2, and
// small integers for MIN/MAX.
inline double exact_float_value(ReduceOp op, uint64_t random, bool narrow) {
  switch (op) {
    case ReduceOp::kSum:
      return static_cast<double>(random % (narrow ? 2 : 8));
    case ReduceOp::kProduct: {
      const double choices[] = {1.0, 2.0, 0.5, -1.0};
      return choices[random % 4];
    }
    default:
      return static_cast<double>(static_cast<int>(random % 15) - 7);
  }
}

inline void store_real(DataType dtype, uint8_t* out, double value) {
  switch (dtype) {
    case DataType::kFloat16: {
      const uint16_t bits = floats::float_to_half(static_cast<float>(value));
      std::memcpy(out, &bits, 2);
      return;
    }
    case DataType::kBFloat16: {
      const uint16_t bits = floats::float_to_bfloat16(static_cast<float>(value));
      std::memcpy(out, &bits, 2);
      return;
    }
    case DataType::kFloat8E4M3:
      *out = floats::float_to_e4m3fn(static_cast<float>(value));
      return;
    case DataType::kFloat8E5M2:
      *out = floats::float_to_e5m2(static_cast<float>(value));
      return;
    case DataType::kFloat32:
    case DataType::kComplex64: {
      const auto f = static_cast<float>(value);
      std::memcpy(out, &f, 4);
      return;
    }
    default:
      std::memcpy(out, &value, 8);
  }
}

inline double load_real(DataType dtype, const uint8_t* in) {
  switch (dtype) {
    case DataType::kFloat16: {
      uint16_t bits;
      std::memcpy(&bits, in, 2);
      return floats::half_to_float(bits);
    }
    case DataType::kBFloat16: {
      uint16_t bits;
      std::memcpy(&bits, in, 2);
      return floats::bfloat16_to_float(bits);
    }
    case DataType::kFloat8E4M3:
      return floats::e4m3fn_to_float(*in);
    case DataType::kFloat8E5M2:
      return floats::e5m2_to_float(*in);
    case DataType::kFloat32:
    case DataType::kComplex64: {
      float f;
      std::memcpy(&f, in, 4);
      return f;
    }
    default: {
      double d;
      std::memcpy(&d, in, 8);
      return d;
    }
  }
}

template <typename T>
inline T fold_integer(ReduceOp op, T a, T b) {
  const __int128 x = a;
  const __int128 y = b;
  switch (op) {
    case ReduceOp::kSum:
      return static_cast<T>(x + y);
    case ReduceOp::kProduct:
      return static_cast<T>(x * y);
    case ReduceOp::kMin:
      return static_cast<T>(x < y ? x : y);
    case ReduceOp::kMax:
      return static_cast<T>(x > y ? x : y);
    case ReduceOp::kBand:
      return static_cast<T>(x & y);
    case ReduceOp::kBor:
      return static_cast<T>(x | y);
    case ReduceOp::kBxor:
      return static_cast<T>(x ^ y);
  }
  return 0;
}

// Inputs of every rank and the expected reduction.
struct ReductionCase {
  std::vector<std::vector<uint8_t>> inputs;
  std::vector<uint8_t> expected;
};

template <typename T>
inline void fill_integer_case(ReductionCase& c, ReduceOp op, size_t count, int size,
                              uint64_t seed) {
  for (size_t i = 0; i < count; ++i) {
    T total{};
    for (int rank = 0; rank < size; ++rank) {
      T value = static_cast<T>(mix(seed, rank, i));
      if (op == ReduceOp::kProduct && i % 2 == 0) value = static_cast<T>(value % 7);  // some zeros
      std::memcpy(c.inputs[static_cast<size_t>(rank)].data() + i * sizeof(T), &value, sizeof(T));
      total = rank == 0 ? value : fold_integer(op, total, value);
    }
    std::memcpy(c.expected.data() + i * sizeof(T), &total, sizeof(T));
  }
}

inline void fill_bool_case(ReductionCase& c, ReduceOp op, size_t count, int size, uint64_t seed) {
  for (size_t i = 0; i < count; ++i) {
    bool any = false;
    bool all = true;
    bool parity = false;
    for (int rank = 0; rank < size; ++rank) {
      // Mostly-true inputs so AND is sometimes true for 5 ranks.
      const bool value = mix(seed, rank, i) % 5 != 0;
      c.inputs[static_cast<size_t>(rank)][i] = value;
      any = any || value;
      all = all && value;
      parity = parity != value;
    }
    const bool is_or = op == ReduceOp::kSum || op == ReduceOp::kMax || op == ReduceOp::kBor;
    const bool is_xor = op == ReduceOp::kBxor;
    c.expected[i] = is_xor ? parity : (is_or ? any : all);
  }
}

inline void fill_float_case(ReductionCase& c, DataType dtype, ReduceOp op, size_t count, int size,
                            uint64_t seed) {
  const bool narrow = dtype == DataType::kFloat8E4M3 || dtype == DataType::kFloat8E5M2;
  const size_t element = element_size(dtype);
  const size_t parts = is_complex(dtype) ? 2 : 1;
  const size_t part_bytes = element / parts;
  for (size_t i = 0; i < count; ++i) {
    std::complex<double> total;
    for (int rank = 0; rank < size; ++rank) {
      const uint64_t random = mix(seed, rank, i);
      std::complex<double> value;
      if (is_complex(dtype) && op == ReduceOp::kProduct) {
        const std::complex<double> units[] = {{1, 0}, {0, 1}, {-1, 0}, {0, -1}};
        value = units[random % 4];
      } else {
        value = {exact_float_value(op, random, narrow),
                 parts == 2 ? exact_float_value(op, random >> 20, narrow) : 0.0};
      }
      uint8_t* slot = c.inputs[static_cast<size_t>(rank)].data() + i * element;
      store_real(dtype, slot, value.real());
      if (parts == 2) store_real(dtype, slot + part_bytes, value.imag());
      if (rank == 0) {
        total = value;
      } else if (op == ReduceOp::kSum) {
        total += value;
      } else if (op == ReduceOp::kProduct) {
        total *= value;
      } else if (op == ReduceOp::kMin) {
        total = std::min(total.real(), value.real());
      } else {
        total = std::max(total.real(), value.real());
      }
    }
    uint8_t* slot = c.expected.data() + i * element;
    store_real(dtype, slot, total.real());
    if (parts == 2) store_real(dtype, slot + part_bytes, total.imag());
  }
}

inline ReductionCase make_reduction_case(DataType dtype, ReduceOp op, size_t count, int size,
                                         uint64_t seed) {
  const size_t bytes = count * element_size(dtype);
  ReductionCase c;
  c.inputs.assign(static_cast<size_t>(size), std::vector<uint8_t>(bytes));
  c.expected.assign(bytes, 0);
  switch (dtype) {
    case DataType::kBool:
      fill_bool_case(c, op, count, size, seed);
      break;
    case DataType::kUInt8:
      fill_integer_case<uint8_t>(c, op, count, size, seed);
      break;
    case DataType::kInt8:
      fill_integer_case<int8_t>(c, op, count, size, seed);
      break;
    case DataType::kInt16:
      fill_integer_case<int16_t>(c, op, count, size, seed);
      break;
    case DataType::kInt32:
      fill_integer_case<int32_t>(c, op, count, size, seed);
      break;
    case DataType::kInt64:
      fill_integer_case<int64_t>(c, op, count, size, seed);
      break;
    default:
      fill_float_case(c, dtype, op, count, size, seed);
  }
  return c;
}

// Equal as numbers: bytes for integers, values for floats (so -0 == +0, which the complex
// reference multiplication does not get bit-exact).
inline ::testing::AssertionResult equal_values(DataType dtype, const std::vector<uint8_t>& actual,
                                               const std::vector<uint8_t>& expected) {
  if (actual.size() != expected.size()) return ::testing::AssertionFailure() << "size differs";
  if (!is_floating(dtype)) {
    for (size_t i = 0; i < actual.size(); ++i) {
      if (actual[i] != expected[i]) {
        return ::testing::AssertionFailure()
               << "byte " << i << ": " << +actual[i] << " != expected " << +expected[i];
      }
    }
    return ::testing::AssertionSuccess();
  }
  const size_t part = element_size(dtype) / (is_complex(dtype) ? 2 : 1);
  for (size_t offset = 0; offset < actual.size(); offset += part) {
    const double a = load_real(dtype, actual.data() + offset);
    const double e = load_real(dtype, expected.data() + offset);
    if (!(a == e)) {
      return ::testing::AssertionFailure()
             << "element " << offset / element_size(dtype) << ": " << a << " != expected " << e;
    }
  }
  return ::testing::AssertionSuccess();
}

// ------------------------------------------------------------------ order-sensitive sums

// Floats of `size` ranks spread over 41 binary orders of magnitude, so that their sum depends on
// the order of the additions; `exact` is each element's sum in double, `magnitude` the sum of the
// absolute values, which bounds what a reordering may change.
struct OrderSensitiveFloats {
  std::vector<std::vector<float>> data;  // by rank
  std::vector<double> exact;
  std::vector<double> magnitude;
};

inline OrderSensitiveFloats order_sensitive_floats(int size, size_t count) {
  OrderSensitiveFloats floats;
  floats.data.assign(static_cast<size_t>(size), std::vector<float>(count));
  floats.exact.assign(count, 0.0);
  floats.magnitude.assign(count, 0.0);
  for (int rank = 0; rank < size; ++rank) {
    std::mt19937 random(static_cast<unsigned>(static_cast<size_t>(rank) * 7919 + count));
    std::uniform_real_distribution<float> mantissa(-1.0f, 1.0f);
    std::uniform_int_distribution<int> exponent(-20, 20);
    for (size_t i = 0; i < count; ++i) {
      const float value = std::ldexp(mantissa(random), exponent(random));
      floats.data[static_cast<size_t>(rank)][i] = value;
      floats.exact[i] += value;
      floats.magnitude[i] += std::fabs(value);
    }
  }
  return floats;
}

// Whether every rank's sum equals rank 0's to the bit, and rank 0's is as close to `reference`
// as reordering the additions of `inputs` allows.
template <typename T>
::testing::AssertionResult agreed_sum_near(const std::vector<std::vector<float>>& sums,
                                           const std::vector<T>& reference,
                                           const OrderSensitiveFloats& inputs) {
  for (size_t rank = 1; rank < sums.size(); ++rank) {
    if (std::memcmp(sums[rank].data(), sums[0].data(), sums[0].size() * sizeof(float)) != 0) {
      return ::testing::AssertionFailure() << "rank " << rank << " differs from rank 0";
    }
  }
  for (size_t i = 0; i < sums[0].size(); ++i) {
    const double bound = 1e-6 * inputs.magnitude[i] + 1e-30;
    if (!(std::fabs(sums[0][i] - static_cast<double>(reference[i])) <= bound)) {
      return ::testing::AssertionFailure()
             << "element " << i << ": " << sums[0][i] << " is further than " << bound << " from "
             << reference[i];
    }
  }
  return ::testing::AssertionSuccess();
}

}  // namespace torchwan::engine::test_data
