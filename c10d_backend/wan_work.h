// The Work handed back for every operation: completes a c10::ivalue::Future whose value is the
// list of output tensors (DDP asserts it is a TensorList) and the base Work state that wait() uses.
#pragma once

#include <ATen/core/ivalue.h>
#include <torch/csrc/distributed/c10d/Work.hpp>

#include <exception>
#include <vector>

namespace torchwan::c10d_backend {

class WanWork final : public c10d::Work {
 public:
  WanWork(int rank, c10d::OpType type, uint64_t sequence_number, const char* profiling_title,
          std::vector<at::Tensor> outputs);

  std::vector<at::Tensor> result() override { return outputs_; }
  c10::intrusive_ptr<c10::ivalue::Future> getFuture() override { return future_; }
  uint64_t getSequencenumber() const override { return sequence_number_; }

  // Called once, from the thread that ran the operation.
  void complete();
  void complete_with_error(std::exception_ptr error);

 private:
  const uint64_t sequence_number_;
  std::vector<at::Tensor> outputs_;
  c10::intrusive_ptr<c10::ivalue::Future> future_;
};

}  // namespace torchwan::c10d_backend
