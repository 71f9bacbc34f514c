#include "transport/core/mailbox.h"

#include <sys/eventfd.h>
#include <unistd.h>

#include <cerrno>
#include <cstdint>
#include <cstring>
#include <string>

#include "transport/errors.h"

namespace torchwan::transport::core {

Wakeup::Wakeup() : fd_(eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC)) {
  if (fd_ < 0) {
    throw TransportError(ErrorKind::kInternal,
                         std::string("transport: eventfd failed: ") + std::strerror(errno));
  }
}

Wakeup::~Wakeup() { ::close(fd_); }

void Wakeup::signal() {
  const uint64_t one = 1;
  // Cannot fail short of counter overflow (2^64 - 1 signals), and then it is signalled anyway.
  [[maybe_unused]] ssize_t written = ::write(fd_, &one, sizeof(one));
}

void Wakeup::clear() {
  uint64_t count = 0;
  // EAGAIN just means nothing was signalled.
  [[maybe_unused]] ssize_t got = ::read(fd_, &count, sizeof(count));
}

}  // namespace torchwan::transport::core
