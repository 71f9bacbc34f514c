#include "c10d_backend/op_runner.h"

namespace torchwan::c10d_backend {

OpRunner::OpRunner() : thread_([this] { run(); }) {}

OpRunner::~OpRunner() { stop(); }

void OpRunner::enqueue(std::function<void()> op) {
  {
    std::lock_guard<std::mutex> lock(mutex_);
    queue_.push_back(std::move(op));
  }
  wake_.notify_one();
}

void OpRunner::stop() {
  {
    std::lock_guard<std::mutex> lock(mutex_);
    stopping_ = true;
  }
  wake_.notify_one();
  if (thread_.joinable() && thread_.get_id() != std::this_thread::get_id()) thread_.join();
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
    }
    op();
  }
}

}  // namespace torchwan::c10d_backend
