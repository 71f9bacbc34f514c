// Element types and reduction operators the engine understands, independent of torch.
#pragma once

#include <cstddef>
#include <cstdint>

namespace torchwan::engine {

enum class DataType : uint8_t {
  kBool,
  kUInt8,
  kInt8,
  kInt16,
  kInt32,
  kInt64,
  kFloat16,
  kBFloat16,
  kFloat32,
  kFloat64,
  kComplex64,
  kComplex128,
  kFloat8E4M3,
  kFloat8E5M2,
};

enum class ReduceOp : uint8_t { kSum, kProduct, kMin, kMax, kBand, kBor, kBxor };

size_t element_size(DataType dtype);
const char* dtype_name(DataType dtype);
const char* reduce_op_name(ReduceOp op);
bool is_floating(DataType dtype);  // real or complex floating point, float8 included
// Whether `op` is defined on `dtype` (MIN/MAX not on complex, bitwise ops only on integers/bool).
bool reduce_supported(DataType dtype, ReduceOp op);

}  // namespace torchwan::engine
