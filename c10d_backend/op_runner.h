// Threads that run queued operations in the order they were issued. Collectives must execute in
// issue order on every rank (one thread), and futures complete in that order, as with Gloo and
// NCCL.
#pragma once

#include <sys/types.h>

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <functional>
#include <mutex>
#include <thread>
#include <vector>

namespace torchwan::c10d_backend {

class OpRunner {
 public:
  // With one thread, operations run strictly one after another in queue order. With more, an
  // operation still starts only after the one queued before it has finished, unless that one has
  // been running for longer than `handoff` and its thread is asleep: a Future callback that
  // blocks waiting for a later operation of the same group (as DDP's PowerSGD hook does) must not
  // hold back the operations queued after it, or it would wait forever. A thread that is merely
  // busy, or runnable but preempted on a loaded machine, is waited for, so completions keep their
  // order however starved the CPU is. Threads start when work arrives that no waiting thread can
  // take, up to `threads`: a runner that is never used costs no thread.
  explicit OpRunner(size_t threads = 1,
                    std::chrono::microseconds handoff = std::chrono::milliseconds(5));
  ~OpRunner();
  OpRunner(const OpRunner&) = delete;
  OpRunner& operator=(const OpRunner&) = delete;

  // Returns false (and drops `op`) once stop() has been called.
  [[nodiscard]] bool enqueue(std::function<void()> op);
  // Runs what is already queued, then stops the threads. Idempotent.
  void stop();

 private:
  void run();
  // Whether the operation with `ticket` may start now; else when to look again.
  bool may_start(uint64_t ticket, std::chrono::steady_clock::time_point now) const;
  // When an operation whose turn has come, but which may not start at `now`, should look again.
  std::chrono::steady_clock::time_point next_look(std::chrono::steady_clock::time_point now) const;

  const std::chrono::microseconds handoff_;
  const size_t max_threads_;
  std::mutex mutex_;
  std::condition_variable wake_;
  std::condition_variable turn_;
  std::deque<std::function<void()>> queue_;
  bool stopping_ = false;
  size_t waiting_ = 0;             // threads asleep until work arrives
  uint64_t next_ticket_ = 0;       // handed out in queue order as threads take operations
  uint64_t started_ = 0;           // operations started so far (tickets below this have started)
  bool previous_finished_ = true;  // whether ticket started_ - 1 has finished
  std::chrono::steady_clock::time_point previous_started_at_{};
  pid_t previous_thread_ = 0;  // kernel thread id running ticket started_ - 1
  std::vector<std::thread> threads_;
};

// Counts operations one owner queued on a runner shared with others, so that the owner can wait
// for its own to finish without stopping the runner. Held by shared_ptr in the queued operations:
// one that runs after its owner has gone still has a counter to decrement.
class PendingCounter {
 public:
  void add();
  void finish();
  // Whether the count reached zero within `timeout`.
  bool wait_idle(std::chrono::milliseconds timeout);
  size_t pending() const;

 private:
  mutable std::mutex mutex_;
  std::condition_variable idle_;
  size_t pending_ = 0;
};

}  // namespace torchwan::c10d_backend
