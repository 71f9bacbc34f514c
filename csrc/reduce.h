// The one place where element-wise reductions live; every algorithm (and the CUDA staging path)
// reduces through these. Half, bfloat16 and float8 accumulate through float and round back.
#pragma once

#include <cstddef>

#include "csrc/dtype.h"

namespace torchwan::engine {

// acc[i] = acc[i] (op) in[i] for i < count. Throws std::invalid_argument when !reduce_supported.
// `acc` and `in` must not overlap (the kernels are vectorised over restrict pointers).
void reduce_into(DataType dtype, ReduceOp op, void* acc, const void* in, size_t count);

// data[i] *= factor, for floating types (AVG divides by world size, PREMUL_SUM multiplies).
// Integer types divide with truncation toward zero when factor = 1/n (AVG on integers is rejected
// by the c10d layer, as Gloo does). Throws std::invalid_argument for bool.
void scale(DataType dtype, void* data, size_t count, double factor);

}  // namespace torchwan::engine
