// One thread that runs queued operations in the order they were issued. Collectives must execute
// in issue order on every rank, and futures complete in that order, as with Gloo and NCCL.
#pragma once

#include <condition_variable>
#include <deque>
#include <functional>
#include <mutex>
#include <thread>

namespace torchwan::c10d_backend {

class OpRunner {
 public:
  OpRunner();
  ~OpRunner();
  OpRunner(const OpRunner&) = delete;
  OpRunner& operator=(const OpRunner&) = delete;

  void enqueue(std::function<void()> op);
  // Runs what is already queued, then stops the thread. Idempotent.
  void stop();

 private:
  void run();

  std::mutex mutex_;
  std::condition_variable wake_;
  std::deque<std::function<void()>> queue_;
  bool stopping_ = false;
  std::thread thread_;
};

}  // namespace torchwan::c10d_backend
