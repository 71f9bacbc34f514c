// How other threads hand work to the progress thread, which alone may touch the ZMQ sockets:
// locked queues plus one eventfd that zmq_poll watches as a raw descriptor. User threads post
// commands; ZMQ's I/O threads post "zmq let go of this send buffer" notices.
#pragma once

#include <mutex>
#include <utility>
#include <vector>

namespace torchwan::transport::zmq_detail {

// An eventfd: readable after signal(), until clear().
class Wakeup {
 public:
  Wakeup();
  ~Wakeup();
  Wakeup(const Wakeup&) = delete;
  Wakeup& operator=(const Wakeup&) = delete;

  void signal();
  void clear();
  int fd() const { return fd_; }

 private:
  int fd_;
};

// A queue whose consumer sleeps on a Wakeup. The consumer must clear() the wakeup before each
// take_all(): then an item pushed at any moment is either taken or leaves the wakeup signalled.
template <typename Item>
class Mailbox {
 public:
  explicit Mailbox(Wakeup& wakeup) : wakeup_(wakeup) {}

  void push(Item item) {
    bool was_empty = false;
    {
      std::lock_guard<std::mutex> lock(mutex_);
      was_empty = items_.empty();
      items_.push_back(std::move(item));
    }
    // A non-empty mailbox was already signalled, and its consumer has yet to take it.
    if (was_empty) wakeup_.signal();
  }

  std::vector<Item> take_all() {
    std::vector<Item> taken;
    std::lock_guard<std::mutex> lock(mutex_);
    taken.swap(items_);
    return taken;
  }

 private:
  Wakeup& wakeup_;
  std::mutex mutex_;
  std::vector<Item> items_;
};

}  // namespace torchwan::transport::zmq_detail
