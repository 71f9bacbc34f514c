#include "c10d_backend/op_runner.h"

#include <unistd.h>

#include <algorithm>
#include <fstream>
#include <iterator>
#include <string>

namespace torchwan::c10d_backend {
namespace {

// Whether kernel thread `thread` of this process is asleep (state S: waiting on a futex, a
// condition variable, a socket...), as opposed to running, runnable, or in a short uninterruptible
// wait. Unknown (no /proc) counts as asleep, which is the time-only rule.
bool thread_is_asleep(pid_t thread) {
  std::ifstream stat("/proc/self/task/" + std::to_string(thread) + "/stat");
  const std::string line((std::istreambuf_iterator<char>(stat)), std::istreambuf_iterator<char>());
  // "tid (name) S ...": the name may hold spaces and parentheses, the state follows the last ')'.
  const size_t name_end = line.rfind(')');
  if (name_end == std::string::npos || name_end + 2 >= line.size()) return true;
  return line[name_end + 2] == 'S';
}

}  // namespace

OpRunner::OpRunner(size_t threads, std::chrono::microseconds handoff)
    : handoff_(handoff), max_threads_(std::max<size_t>(threads, 1)) {
  threads_.reserve(max_threads_);
}

OpRunner::~OpRunner() { stop(); }

bool OpRunner::enqueue(std::function<void()> op) {
  {
    std::lock_guard<std::mutex> lock(mutex_);
    if (stopping_) return false;
    queue_.push_back(std::move(op));
    // A woken thread leaves `waiting_` when it takes an operation, so more queued operations than
    // sleeping threads means one of them would otherwise wait for a thread to come free.
    if (queue_.size() > waiting_ && threads_.size() < max_threads_) {
      threads_.emplace_back([this] { run(); });
    }
  }
  wake_.notify_one();
  return true;
}

void OpRunner::stop() {
  {
    std::lock_guard<std::mutex> lock(mutex_);
    stopping_ = true;  // no thread starts after this, so threads_ no longer changes
  }
  wake_.notify_all();
  for (std::thread& thread : threads_) {
    if (thread.joinable() && thread.get_id() != std::this_thread::get_id()) thread.join();
  }
}

bool OpRunner::may_start(uint64_t ticket, std::chrono::steady_clock::time_point now) const {
  if (started_ != ticket) return false;
  if (previous_finished_) return true;
  return now - previous_started_at_ >= handoff_ && thread_is_asleep(previous_thread_);
}

std::chrono::steady_clock::time_point OpRunner::next_look(
    std::chrono::steady_clock::time_point now) const {
  // Until the hand-off time has passed; after it, every hand-off period while the previous
  // operation's thread keeps running.
  return std::max(previous_started_at_ + handoff_, now + handoff_);
}

void OpRunner::run() {
  while (true) {
    std::function<void()> op;
    uint64_t ticket = 0;
    {
      std::unique_lock<std::mutex> lock(mutex_);
      ++waiting_;
      wake_.wait(lock, [&] { return stopping_ || !queue_.empty(); });
      --waiting_;
      if (queue_.empty()) return;
      op = std::move(queue_.front());
      queue_.pop_front();
      ticket = next_ticket_++;
      // Wait for this operation's turn: the one before it has started and either finished or
      // overrun the hand-off time asleep (then it is presumed blocked on something queued later).
      for (auto now = std::chrono::steady_clock::now(); !may_start(ticket, now);
           now = std::chrono::steady_clock::now()) {
        if (started_ == ticket) {
          turn_.wait_until(lock, next_look(now));
        } else {
          turn_.wait(lock);
        }
      }
      started_ = ticket + 1;
      previous_finished_ = false;
      previous_started_at_ = std::chrono::steady_clock::now();
      previous_thread_ = gettid();
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

void PendingCounter::add() {
  std::lock_guard<std::mutex> lock(mutex_);
  ++pending_;
}

void PendingCounter::finish() {
  std::lock_guard<std::mutex> lock(mutex_);
  if (--pending_ == 0) idle_.notify_all();
}

bool PendingCounter::wait_idle(std::chrono::milliseconds timeout) {
  std::unique_lock<std::mutex> lock(mutex_);
  return idle_.wait_for(lock, timeout, [&] { return pending_ == 0; });
}

size_t PendingCounter::pending() const {
  std::lock_guard<std::mutex> lock(mutex_);
  return pending_;
}

}  // namespace torchwan::c10d_backend
