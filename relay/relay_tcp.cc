#include "relay/relay_tcp.h"

#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>

#include <cerrno>
#include <cstring>

namespace torchwan::relay {

std::string set_congestion_control(int fd, const std::string& name) {
  if (setsockopt(fd, IPPROTO_TCP, TCP_CONGESTION, name.data(),
                 static_cast<socklen_t>(name.size())) == 0) {
    return {};
  }
  return "TCP_CONGESTION " + name + ": " + std::strerror(errno);
}

}  // namespace torchwan::relay
