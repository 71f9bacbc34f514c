// How other threads hand work to a link's progress thread, which alone touches the link's
// sockets or workers: locked queues plus an eventfd the progress loop sleeps on (epoll or
// zmq_poll watch it as a raw descriptor). Both links use it: UCX for its commands, ZeroMQ for its
// commands and for "ZMQ let go of this send buffer" notices from ZMQ's I/O threads.
#pragma once

#include <mutex>
#include <utility>
#include <vector>

namespace torchwan::transport::core {

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

  // Queues `item` and wakes the consumer. Returns false (and drops the item) once closed.
  bool push(Item item) {
    bool was_empty = false;
    {
      std::lock_guard<std::mutex> lock(mutex_);
      if (closed_) return false;
      was_empty = items_.empty();
      items_.push_back(std::move(item));
    }
    // A non-empty mailbox was already signalled, and its consumer has yet to take it.
    if (was_empty) wakeup_.signal();
    return true;
  }
  // Every queued item, in order.
  std::vector<Item> take_all() {
    std::vector<Item> taken;
    std::lock_guard<std::mutex> lock(mutex_);
    taken.swap(items_);
    return taken;
  }
  // Refuses later pushes; items already queued stay until take_all.
  void close() {
    std::lock_guard<std::mutex> lock(mutex_);
    closed_ = true;
  }

 private:
  Wakeup& wakeup_;
  std::mutex mutex_;
  std::vector<Item> items_;
  bool closed_ = false;
};

// A mailbox with a wakeup of its own, for a progress loop with one source of commands.
template <typename Item>
class CommandMailbox {
 public:
  bool push(Item item) { return mailbox_.push(std::move(item)); }
  // Clears the wakeup, then takes every queued command, in order.
  std::vector<Item> take_all() {
    wakeup_.clear();
    return mailbox_.take_all();
  }
  void close() { mailbox_.close(); }
  // Readable while commands are waiting; for the progress loop's poll set.
  int wakeup_fd() const { return wakeup_.fd(); }

 private:
  Wakeup wakeup_;
  Mailbox<Item> mailbox_{wakeup_};
};

}  // namespace torchwan::transport::core
