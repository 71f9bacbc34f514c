// Translation between torch's tensor/op vocabulary and the engine's, with the checks that give
// users a clear error instead of a wrong answer.
#pragma once

#include <ATen/ATen.h>

#include <optional>
#include <torch/csrc/distributed/c10d/Types.hpp>
#include <vector>

#include "csrc/dtype.h"

namespace torchwan::c10d_backend {

// Throws a TypeError naming `op_name` and the dtype when the engine cannot carry it.
engine::DataType engine_dtype(at::ScalarType type, const char* op_name);

// The engine op that carries `op` (AVG and PREMUL_SUM travel as SUM and are scaled around it).
// Throws a ValueError when `op` is not defined on `type`.
engine::ReduceOp engine_reduce_op(const c10d::ReduceOp& op, at::ScalarType type,
                                  const char* op_name);

// Checks that `tensors` holds exactly one tensor and returns it.
const at::Tensor& single_tensor(const std::vector<at::Tensor>& tensors, const char* op_name);

// Throws a TypeError unless every tensor has `type`.
void check_same_dtype(const std::vector<at::Tensor>& tensors, at::ScalarType type,
                      const char* op_name);

// Throws a ValueError unless `tensor` has `numel` elements; `what` names it in the message.
void check_numel(const at::Tensor& tensor, int64_t numel, const char* op_name, const char* what);

// The scaling around the SUM that carries AVG and PREMUL_SUM.
class ReduceScaling {
 public:
  ReduceScaling(const c10d::ReduceOp& op, int world_size, const char* op_name);
  // Whether inputs must be multiplied before the sum (PREMUL_SUM).
  bool premultiplies() const { return factor_.has_value(); }
  // Multiplies `host` in place by the PREMUL_SUM factor.
  void premultiply(at::Tensor& host) const;
  // Divides `host` in place by the world size for AVG.
  void finish(at::Tensor& host) const;

 private:
  std::optional<at::Tensor> factor_;  // a CPU scalar tensor
  bool average_ = false;
  int world_size_;
};

}  // namespace torchwan::c10d_backend
