#include "transport/ucx/ucx_command_queue.h"

#include <sys/eventfd.h>
#include <unistd.h>

#include <cerrno>
#include <cstdint>
#include <cstring>
#include <string>
#include <utility>

#include "transport/errors.h"

namespace torchwan::transport::ucx {

CommandQueue::CommandQueue() : event_fd_(eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC)) {
  if (event_fd_ < 0) {
    throw TransportError(ErrorKind::kInternal,
                         std::string("ucx: eventfd failed: ") + std::strerror(errno));
  }
}

CommandQueue::~CommandQueue() { ::close(event_fd_); }

bool CommandQueue::push(Command command) {
  bool was_empty = false;
  {
    std::lock_guard<std::mutex> lock(mutex_);
    if (closed_) return false;
    was_empty = commands_.empty();
    commands_.push_back(std::move(command));
  }
  // One wakeup per batch: the progress thread takes the whole queue when it wakes.
  if (was_empty) {
    const uint64_t one = 1;
    [[maybe_unused]] ssize_t written = ::write(event_fd_, &one, sizeof(one));
  }
  return true;
}

std::vector<CommandQueue::Command> CommandQueue::take_all() {
  std::vector<Command> taken;
  std::lock_guard<std::mutex> lock(mutex_);
  // Cleared under the lock, so a push that finds the queue empty always writes a fresh wakeup.
  uint64_t count = 0;
  [[maybe_unused]] ssize_t got = ::read(event_fd_, &count, sizeof(count));
  taken.swap(commands_);
  return taken;
}

void CommandQueue::close() {
  std::lock_guard<std::mutex> lock(mutex_);
  closed_ = true;
}

}  // namespace torchwan::transport::ucx
