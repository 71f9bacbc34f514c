// Element-wise reduction kernels for every (dtype, op) pair.
//
// Each kernel is a plain loop over two restrict pointers so the compiler vectorises it (this file
// is built with -O3, see CMakeLists.txt); float32 SUM runs at memory speed.
//
// Narrow floats (float16, bfloat16, float8) are widened to float, combined in float and rounded
// back to the narrow type for every element at every reduction step. That is exactly what torch
// and Gloo do: c10::Half/BFloat16/Float8 arithmetic operators convert both operands to float,
// compute in float and round the result back (c10/util/Half-inl.h), and Gloo's float16 sum/product/
// min/max (gloo/types.h) use those operators element by element. The engine therefore produces the
// same bits as a Gloo allreduce given the same reduction order. Accumulating a whole collective in
// float and rounding once would be more accurate but would differ from torch.
#include "csrc/reduce.h"

#include <cmath>
#include <cstdint>
#include <limits>
#include <stdexcept>
#include <string>
#include <type_traits>

#include "csrc/float_conversions.h"

namespace torchwan::engine {
namespace {

// Unsigned arithmetic of at least 32 bits: integer sums and products wrap around like torch's
// (two's complement) instead of being undefined on signed overflow, and small types do not get
// promoted to signed int.
template <typename T>
using WrapType = std::conditional_t<(sizeof(T) <= 4), uint32_t, uint64_t>;

template <typename T>
T wrapping_add(T a, T b) {
  return static_cast<T>(static_cast<WrapType<T>>(a) + static_cast<WrapType<T>>(b));
}

template <typename T>
T wrapping_mul(T a, T b) {
  return static_cast<T>(static_cast<WrapType<T>>(a) * static_cast<WrapType<T>>(b));
}

// MIN/MAX propagate NaN, as torch.minimum/maximum do: if `in` is NaN it wins, and a NaN already
// in `acc` stays because every comparison with it is false.
template <typename T>
T min_of(T acc, T in) {
  bool take_in = in < acc;
  if constexpr (std::is_floating_point_v<T>) take_in = take_in | (in != in);
  return take_in ? in : acc;
}

template <typename T>
T max_of(T acc, T in) {
  bool take_in = in > acc;
  if constexpr (std::is_floating_point_v<T>) take_in = take_in | (in != in);
  return take_in ? in : acc;
}

// acc[i] = combine(acc[i], in[i]). `acc` and `in` must not partially overlap.
template <typename T, typename Combine>
void combine_arrays(T* __restrict acc, const T* __restrict in, size_t count, Combine combine) {
  for (size_t i = 0; i < count; ++i) acc[i] = combine(acc[i], in[i]);
}

// int8..int64, uint8, float and double.
template <typename T>
void reduce_numbers(ReduceOp op, void* acc_bytes, const void* in_bytes, size_t count) {
  T* acc = static_cast<T*>(acc_bytes);
  const T* in = static_cast<const T*>(in_bytes);
  switch (op) {
    case ReduceOp::kSum:
      if constexpr (std::is_integral_v<T>) {
        combine_arrays(acc, in, count, wrapping_add<T>);
      } else {
        combine_arrays(acc, in, count, [](T a, T b) { return a + b; });
      }
      return;
    case ReduceOp::kProduct:
      if constexpr (std::is_integral_v<T>) {
        combine_arrays(acc, in, count, wrapping_mul<T>);
      } else {
        combine_arrays(acc, in, count, [](T a, T b) { return a * b; });
      }
      return;
    case ReduceOp::kMin:
      combine_arrays(acc, in, count, min_of<T>);
      return;
    case ReduceOp::kMax:
      combine_arrays(acc, in, count, max_of<T>);
      return;
    case ReduceOp::kBand:
    case ReduceOp::kBor:
    case ReduceOp::kBxor:
      if constexpr (std::is_integral_v<T>) {
        if (op == ReduceOp::kBand) {
          combine_arrays(acc, in, count, [](T a, T b) -> T { return a & b; });
        } else if (op == ReduceOp::kBor) {
          combine_arrays(acc, in, count, [](T a, T b) -> T { return a | b; });
        } else {
          combine_arrays(acc, in, count, [](T a, T b) -> T { return a ^ b; });
        }
        return;
      }
      break;
  }
  throw std::logic_error("reduce_numbers: unsupported op reached the kernel");
}

// torch bools are bytes holding 0 or 1. SUM and MAX are logical OR, PRODUCT and MIN logical AND
// (what torch computes for bool tensors); the results are normalised to 0/1.
void reduce_bools(ReduceOp op, void* acc_bytes, const void* in_bytes, size_t count) {
  auto* acc = static_cast<uint8_t*>(acc_bytes);
  const auto* in = static_cast<const uint8_t*>(in_bytes);
  switch (op) {
    case ReduceOp::kSum:
    case ReduceOp::kMax:
    case ReduceOp::kBor:
      combine_arrays(acc, in, count, [](uint8_t a, uint8_t b) -> uint8_t { return (a | b) != 0; });
      return;
    case ReduceOp::kProduct:
    case ReduceOp::kMin:
    case ReduceOp::kBand:
      combine_arrays(acc, in, count,
                     [](uint8_t a, uint8_t b) -> uint8_t { return (a != 0) & (b != 0); });
      return;
    case ReduceOp::kBxor:
      combine_arrays(acc, in, count,
                     [](uint8_t a, uint8_t b) -> uint8_t { return (a != 0) ^ (b != 0); });
      return;
  }
  throw std::logic_error("reduce_bools: unknown op");
}

// A narrow float format carried as raw bits, computed through float.
template <typename Bits, float (*ToFloat)(Bits), Bits (*FromFloat)(float)>
struct NarrowFloat {
  using bits_type = Bits;
  template <typename Combine>
  static void combine(Bits* __restrict acc, const Bits* __restrict in, size_t count,
                      Combine combine) {
    for (size_t i = 0; i < count; ++i) acc[i] = FromFloat(combine(ToFloat(acc[i]), ToFloat(in[i])));
  }
  static void scale(Bits* data, size_t count, double factor) {
    for (size_t i = 0; i < count; ++i) {
      data[i] = FromFloat(static_cast<float>(static_cast<double>(ToFloat(data[i])) * factor));
    }
  }
};

using Half = NarrowFloat<uint16_t, floats::half_to_float, floats::float_to_half>;
using BFloat16 = NarrowFloat<uint16_t, floats::bfloat16_to_float, floats::float_to_bfloat16>;
using Float8E4M3 = NarrowFloat<uint8_t, floats::e4m3fn_to_float, floats::float_to_e4m3fn>;
using Float8E5M2 = NarrowFloat<uint8_t, floats::e5m2_to_float, floats::float_to_e5m2>;

template <typename Format>
void reduce_narrow(ReduceOp op, void* acc_bytes, const void* in_bytes, size_t count) {
  using Bits = typename Format::bits_type;
  auto* acc = static_cast<Bits*>(acc_bytes);
  const auto* in = static_cast<const Bits*>(in_bytes);
  switch (op) {
    case ReduceOp::kSum:
      Format::combine(acc, in, count, [](float a, float b) { return a + b; });
      return;
    case ReduceOp::kProduct:
      Format::combine(acc, in, count, [](float a, float b) { return a * b; });
      return;
    case ReduceOp::kMin:
      Format::combine(acc, in, count, min_of<float>);
      return;
    case ReduceOp::kMax:
      Format::combine(acc, in, count, max_of<float>);
      return;
    default:
      break;
  }
  throw std::logic_error("reduce_narrow: unsupported op reached the kernel");
}

// Complex numbers as (real, imag) pairs. SUM is a float sum of twice as many numbers; PRODUCT is
// the textbook formula that c10::complex::operator*= uses (no C99 Annex G inf/NaN recovery), so
// the bits match torch.
template <typename T>
void reduce_complex(ReduceOp op, void* acc_bytes, const void* in_bytes, size_t count) {
  if (op == ReduceOp::kSum) {
    reduce_numbers<T>(ReduceOp::kSum, acc_bytes, in_bytes, 2 * count);
    return;
  }
  if (op != ReduceOp::kProduct) throw std::logic_error("reduce_complex: unsupported op");
  T* __restrict acc = static_cast<T*>(acc_bytes);
  const T* __restrict in = static_cast<const T*>(in_bytes);
  for (size_t i = 0; i < count; ++i) {
    const T a = acc[2 * i], b = acc[2 * i + 1];
    const T c = in[2 * i], d = in[2 * i + 1];
    acc[2 * i] = a * c - b * d;
    acc[2 * i + 1] = a * d + b * c;
  }
}

template <typename T>
void scale_floats(void* data_bytes, size_t count, double factor) {
  T* data = static_cast<T*>(data_bytes);
  // In double, then rounded once: for AVG (factor = 1/n) this is the correctly rounded x / n in
  // all but vanishingly rare double-rounding cases.
  for (size_t i = 0; i < count; ++i) {
    data[i] = static_cast<T>(static_cast<double>(data[i]) * factor);
  }
}

template <typename T>
T saturating_from_double(double value) {
  if (!(value == value)) return T{0};
  if (value <= static_cast<double>(std::numeric_limits<T>::min())) {
    return std::numeric_limits<T>::min();
  }
  if (value >= static_cast<double>(std::numeric_limits<T>::max())) {
    return std::numeric_limits<T>::max();
  }
  return static_cast<T>(value);
}

template <typename T>
void scale_integers(void* data_bytes, size_t count, double factor) {
  T* data = static_cast<T*>(data_bytes);
  // factor = 1/n (AVG): integer division, truncating toward zero like torch's div(rounding_mode=
  // "trunc"); done in integers so int64 values above 2^53 stay exact.
  const double reciprocal = 1.0 / factor;
  const double divisor = std::round(reciprocal);
  if (divisor >= 1.0 && divisor <= 9.0e15 && std::fabs(reciprocal - divisor) <= 1e-9 * divisor) {
    const auto n = static_cast<int64_t>(divisor);
    for (size_t i = 0; i < count; ++i) {
      data[i] = static_cast<T>(static_cast<int64_t>(data[i]) / n);
    }
    return;
  }
  // Any other factor (PREMUL_SUM): multiply in double, truncate toward zero, saturate.
  for (size_t i = 0; i < count; ++i) {
    data[i] = saturating_from_double<T>(std::trunc(static_cast<double>(data[i]) * factor));
  }
}

}  // namespace

void reduce_into(DataType dtype, ReduceOp op, void* acc, const void* in, size_t count) {
  if (!reduce_supported(dtype, op)) {
    throw std::invalid_argument(std::string("reduce_into: ") + reduce_op_name(op) +
                                " is not defined for " + dtype_name(dtype));
  }
  if (count == 0) return;
  switch (dtype) {
    case DataType::kBool:
      return reduce_bools(op, acc, in, count);
    case DataType::kUInt8:
      return reduce_numbers<uint8_t>(op, acc, in, count);
    case DataType::kInt8:
      return reduce_numbers<int8_t>(op, acc, in, count);
    case DataType::kInt16:
      return reduce_numbers<int16_t>(op, acc, in, count);
    case DataType::kInt32:
      return reduce_numbers<int32_t>(op, acc, in, count);
    case DataType::kInt64:
      return reduce_numbers<int64_t>(op, acc, in, count);
    case DataType::kFloat16:
      return reduce_narrow<Half>(op, acc, in, count);
    case DataType::kBFloat16:
      return reduce_narrow<BFloat16>(op, acc, in, count);
    case DataType::kFloat32:
      return reduce_numbers<float>(op, acc, in, count);
    case DataType::kFloat64:
      return reduce_numbers<double>(op, acc, in, count);
    case DataType::kComplex64:
      return reduce_complex<float>(op, acc, in, count);
    case DataType::kComplex128:
      return reduce_complex<double>(op, acc, in, count);
    case DataType::kFloat8E4M3:
      return reduce_narrow<Float8E4M3>(op, acc, in, count);
    case DataType::kFloat8E5M2:
      return reduce_narrow<Float8E5M2>(op, acc, in, count);
  }
  throw std::invalid_argument("reduce_into: unknown dtype");
}

void scale(DataType dtype, void* data, size_t count, double factor) {
  switch (dtype) {
    case DataType::kBool:
      throw std::invalid_argument("scale: bool tensors cannot be scaled");
    case DataType::kUInt8:
      return scale_integers<uint8_t>(data, count, factor);
    case DataType::kInt8:
      return scale_integers<int8_t>(data, count, factor);
    case DataType::kInt16:
      return scale_integers<int16_t>(data, count, factor);
    case DataType::kInt32:
      return scale_integers<int32_t>(data, count, factor);
    case DataType::kInt64:
      return scale_integers<int64_t>(data, count, factor);
    case DataType::kFloat16:
      return Half::scale(static_cast<uint16_t*>(data), count, factor);
    case DataType::kBFloat16:
      return BFloat16::scale(static_cast<uint16_t*>(data), count, factor);
    case DataType::kFloat32:
      return scale_floats<float>(data, count, factor);
    case DataType::kFloat64:
      return scale_floats<double>(data, count, factor);
    case DataType::kComplex64:
      return scale_floats<float>(data, 2 * count, factor);  // a real factor scales both parts
    case DataType::kComplex128:
      return scale_floats<double>(data, 2 * count, factor);
    case DataType::kFloat8E4M3:
      return Float8E4M3::scale(static_cast<uint8_t*>(data), count, factor);
    case DataType::kFloat8E5M2:
      return Float8E5M2::scale(static_cast<uint8_t*>(data), count, factor);
  }
  throw std::invalid_argument("scale: unknown dtype");
}

}  // namespace torchwan::engine
