// Translation between torch's tensor/op vocabulary and the engine's, with the checks that give
// users a clear error instead of a wrong answer.
#pragma once

#include <ATen/ATen.h>
#include <torch/csrc/distributed/c10d/Types.hpp>

#include <string>
#include <vector>

#include "csrc/dtype.h"

namespace torchwan::c10d_backend {

// Throws a TypeError naming `op_name` and the dtype when the engine cannot carry it.
engine::DataType engine_dtype(at::ScalarType type, const char* op_name);

// The engine op that carries `op` (AVG and PREMUL_SUM travel as SUM and are scaled around it).
// Throws a ValueError when `op` is not defined on `type`.
engine::ReduceOp engine_reduce_op(const c10d::ReduceOp& op, at::ScalarType type,
                                  const char* op_name);

// Checks that `tensor` is dense, contiguous and on the CPU.
void check_dense_cpu(const at::Tensor& tensor, const char* op_name);
// Checks that `tensors` holds exactly one tensor that passes check_dense_cpu and returns it.
const at::Tensor& single_dense_tensor(const std::vector<at::Tensor>& tensors, const char* op_name);

}  // namespace torchwan::c10d_backend
