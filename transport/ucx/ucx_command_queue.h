// How user threads hand work to the progress thread, which alone may touch UCX: a locked queue of
// commands plus an eventfd that wakes the progress thread from its epoll sleep.
#pragma once

#include <functional>
#include <mutex>
#include <vector>

namespace torchwan::transport::ucx {

class Engine;

class CommandQueue {
 public:
  using Command = std::function<void(Engine&)>;

  CommandQueue();
  ~CommandQueue();
  CommandQueue(const CommandQueue&) = delete;
  CommandQueue& operator=(const CommandQueue&) = delete;

  // Queues `command` and wakes the progress thread. Returns false (and drops the command) once
  // the queue is closed.
  bool push(Command command);
  // Takes every queued command, in order, and clears the wakeup.
  std::vector<Command> take_all();
  // Refuses later pushes; commands already queued stay until take_all.
  void close();
  // Readable while commands are waiting; for the progress thread's epoll set.
  int wakeup_fd() const { return event_fd_; }

 private:
  std::mutex mutex_;
  std::vector<Command> commands_;
  bool closed_ = false;
  int event_fd_;
};

}  // namespace torchwan::transport::ucx
