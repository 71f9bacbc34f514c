#include "c10d_backend/op_runner.h"

#include <algorithm>

namespace torchwan::c10d_backend {

OpRunner::OpRunner(size_t threads, std::chrono::microseconds handoff) : handoff_(handoff) {
  threads_.reserve(std::max<size_t>(threads, 1));
  for (size_t i = 0; i < std::max<size_t>(threads, 1); ++i)
    threads_.emplace_back([this] { run(); });
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

bool OpRunner::may_start(uint64_t ticket, std::chrono::steady_clock::time_point now) const {
  if (started_ != ticket) return false;
  return previous_finished_ || now - previous_started_at_ >= handoff_;
}

void OpRunner::run() {
  while (true) {
    std::function<void()> op;
    uint64_t ticket = 0;
    {
      std::unique_lock<std::mutex> lock(mutex_);
      wake_.wait(lock, [&] { return stopping_ || !queue_.empty(); });
      if (queue_.empty()) return;
      op = std::move(queue_.front());
      queue_.pop_front();
      ticket = next_ticket_++;
      // Wait for this operation's turn: the one before it has started and either finished or
      // overrun the hand-off time (then it is presumed blocked on something queued later).
      while (!may_start(ticket, std::chrono::steady_clock::now())) {
        if (started_ == ticket) {
          turn_.wait_until(lock, previous_started_at_ + handoff_);
        } else {
          turn_.wait(lock);
        }
      }
      started_ = ticket + 1;
      previous_finished_ = false;
      previous_started_at_ = std::chrono::steady_clock::now();
    }
    turn_.notify_all();
    op();
    {
      std::lock_guard<std::mutex> lock(mutex_);
      if (started_ == ticket + 1) previous_finished_ = true;
    }
    turn_.notify_all();
  }
}

}  // namespace torchwan::c10d_backend
