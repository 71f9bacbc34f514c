// Threads that run queued operations in the order they were issued. Collectives must execute in
// issue order on every rank (one thread), and futures complete in that order, as with Gloo and NCCL.
#pragma once

#include <condition_variable>
#include <deque>
#include <functional>
#include <mutex>
#include <thread>
#include <vector>

namespace torchwan::c10d_backend {

class OpRunner {
 public:
  // With more than one thread, operations still start in queue order, but one that blocks (a
  // Future callback waiting for a later operation of the same group, as DDP's PowerSGD hook does)
  // does not hold back the ones queued after it.
  explicit OpRunner(size_t threads = 1);
  ~OpRunner();
  OpRunner(const OpRunner&) = delete;
  OpRunner& operator=(const OpRunner&) = delete;

  // Returns false (and drops `op`) once stop() has been called.
  [[nodiscard]] bool enqueue(std::function<void()> op);
  // Runs what is already queued, then stops the thread. Idempotent.
  void stop();

 private:
  void run();

  std::mutex mutex_;
  std::condition_variable wake_;
  std::condition_variable turn_;
  std::deque<std::function<void()>> queue_;
  bool stopping_ = false;
  uint64_t next_ticket_ = 0;   // handed out in queue order as threads take operations
  uint64_t next_to_start_ = 0; // the ticket whose operation may start next
  std::vector<std::thread> threads_;
};

}  // namespace torchwan::c10d_backend
