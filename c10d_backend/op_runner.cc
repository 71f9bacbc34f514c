#include "c10d_backend/op_runner.h"

#include <algorithm>

namespace torchwan::c10d_backend {

OpRunner::OpRunner(size_t threads) {
  threads_.reserve(std::max<size_t>(threads, 1));
  for (size_t i = 0; i < std::max<size_t>(threads, 1); ++i) threads_.emplace_back([this] { run(); });
}

OpRunner::~OpRunner() { stop(); }

bool OpRunner::enqueue(std::function<void()> op) {
  {
    std::lock_guard<std::mutex> lock(mutex_);
    if (stopping_) return false;
    queue_.push_back(std::move(op));
  }
  wake_.notify_one();
  return true;
}

void OpRunner::stop() {
  {
    std::lock_guard<std::mutex> lock(mutex_);
    stopping_ = true;
  }
  wake_.notify_all();
  for (std::thread& thread : threads_) {
    if (thread.joinable() && thread.get_id() != std::this_thread::get_id()) thread.join();
  }
}

void OpRunner::run() {
  while (true) {
    std::function<void()> op;
    {
      std::unique_lock<std::mutex> lock(mutex_);
      wake_.wait(lock, [&] { return stopping_ || !queue_.empty(); });
      if (queue_.empty()) return;
      op = std::move(queue_.front());
      queue_.pop_front();
      // Another thread may have taken the operation queued just before this one and not have
      // started it yet: start strictly in queue order.
      const uint64_t ticket = next_ticket_++;
      turn_.wait(lock, [&] { return next_to_start_ == ticket; });
      ++next_to_start_;
    }
    turn_.notify_all();
    op();
  }
}

}  // namespace torchwan::c10d_backend
