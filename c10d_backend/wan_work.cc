#include "c10d_backend/wan_work.h"

namespace torchwan::c10d_backend {

WanWork::WanWork(int rank, c10d::OpType type, uint64_t sequence_number,
                 const char* profiling_title, std::vector<at::Tensor> outputs)
    : c10d::Work(rank, type, profiling_title),
      sequence_number_(sequence_number),
      outputs_(std::move(outputs)),
      future_(c10::make_intrusive<c10::ivalue::Future>(
          c10::ListType::create(c10::TensorType::get()))) {}

void WanWork::complete() {
  // The future first: a caller released by wait() may read the future's value at once.
  future_->markCompleted(c10::IValue(outputs_));
  finish();
}

void WanWork::complete_with_error(std::exception_ptr error) {
  future_->setError(error);
  finish(error);
}

}  // namespace torchwan::c10d_backend
