// The Work handed back for every operation: completes a c10::ivalue::Future whose value is the
// list of output tensors (DDP asserts it is a TensorList) and the base Work state that wait() uses.
// For device tensors the Future is device-aware: it completes on the comm stream, and wait() /
// Future.wait() make the caller's current stream wait for the results instead of blocking the GPU.
#pragma once

#include <ATen/core/ivalue.h>
#include <c10/core/Stream.h>

#include <atomic>
#include <exception>
#include <optional>
#include <torch/csrc/distributed/c10d/Work.hpp>
#include <vector>

namespace torchwan::c10d_backend {

class WanWork final : public c10d::Work {
 public:
  WanWork(int rank, c10d::OpType type, uint64_t sequence_number, const char* profiling_title,
          std::vector<at::Tensor> outputs, std::vector<c10::Device> devices = {});

  std::vector<at::Tensor> result() override { return outputs_; }
  c10::intrusive_ptr<c10::ivalue::Future> getFuture() override { return future_; }
  uint64_t getSequencenumber() const override { return sequence_number_; }
  int sourceRank() const override;
  // Makes the caller's current streams wait for the results (a no-op for CPU tensors).
  void synchronize() override;

  // Called once, from the thread that ran the operation. `stream` is where device results were
  // produced (the comm stream); the Future records its completion event there.
  void complete(std::optional<c10::Stream> stream = std::nullopt);
  void complete_with_error(std::exception_ptr error);
  // For recvAnysource: the rank the message came from, set before complete().
  void set_source_rank(int rank) { source_rank_ = rank; }

 private:
  const uint64_t sequence_number_;
  std::vector<at::Tensor> outputs_;
  const bool on_device_;
  std::atomic<int> source_rank_{-1};
  c10::intrusive_ptr<c10::ivalue::Future> future_;
};

}  // namespace torchwan::c10d_backend
