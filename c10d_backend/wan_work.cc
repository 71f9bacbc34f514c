#include "c10d_backend/wan_work.h"

#include <c10/core/StreamGuard.h>
#include <c10/util/Exception.h>

namespace torchwan::c10d_backend {

WanWork::WanWork(int rank, c10d::OpType type, uint64_t sequence_number, const char* profiling_title,
                 std::vector<at::Tensor> outputs, std::vector<c10::Device> devices)
    : c10d::Work(rank, type, profiling_title),
      sequence_number_(sequence_number),
      outputs_(std::move(outputs)),
      on_device_(!devices.empty()),
      future_(c10::make_intrusive<c10::ivalue::Future>(
          c10::ListType::create(c10::TensorType::get()), std::move(devices))) {}

int WanWork::sourceRank() const {
  const int source = source_rank_.load();
  TORCH_CHECK(source >= 0,
              "torchwan: sourceRank() is only known for a completed recv from any source");
  return source;
}

void WanWork::synchronize() {
  // The Future recorded an event on the comm stream when it completed; waiting on a completed
  // Future makes the current streams wait on that event without blocking the host.
  if (on_device_) future_->wait();
}

void WanWork::complete(std::optional<c10::Stream> stream) {
  const c10::OptionalStreamGuard on_stream(stream);
  // The future first: a caller released by wait() may read the future's value at once.
  future_->markCompleted(c10::IValue(outputs_));
  finish();
}

void WanWork::complete_with_error(std::exception_ptr error) {
  future_->setError(error);
  finish(error);
}

}  // namespace torchwan::c10d_backend
