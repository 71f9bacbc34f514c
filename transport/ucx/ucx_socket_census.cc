#include "transport/ucx/ucx_socket_census.h"

#include <dirent.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <array>
#include <cstdlib>
#include <memory>
#include <string>
#include <string_view>

namespace torchwan::transport::ucx {

namespace {

struct DirectoryCloser {
  void operator()(DIR* directory) const { closedir(directory); }
};

// Calls visit(fd, inode) for every socket descriptor of this process. The descriptors are told
// apart by their /proc link ("socket:[inode]"), not by touching them: other threads (other
// transports of the process) may be opening and closing theirs meanwhile.
template <typename Visit>
void for_each_socket(Visit&& visit) {
  std::unique_ptr<DIR, DirectoryCloser> directory(opendir("/proc/self/fd"));
  if (!directory) return;
  const int own_fd = dirfd(directory.get());
  constexpr std::string_view kSocketPrefix = "socket:[";
  while (const dirent* entry = readdir(directory.get())) {
    char* end = nullptr;
    const long fd = std::strtol(entry->d_name, &end, 10);
    if (end == entry->d_name || *end != '\0' || fd == own_fd) continue;
    const std::string path = std::string("/proc/self/fd/") + entry->d_name;
    std::array<char, 64> target{};
    const ssize_t length = readlink(path.c_str(), target.data(), target.size() - 1);
    if (length <= 0) continue;
    const std::string_view link(target.data(), static_cast<size_t>(length));
    if (!link.starts_with(kSocketPrefix)) continue;
    const uint64_t inode = std::strtoull(link.data() + kSocketPrefix.size(), nullptr, 10);
    visit(static_cast<int>(fd), inode);
  }
}

bool is_connected_tcp(int fd) {
  int value = 0;
  socklen_t length = sizeof(value);
  if (getsockopt(fd, SOL_SOCKET, SO_DOMAIN, &value, &length) != 0 ||
      (value != AF_INET && value != AF_INET6)) {
    return false;
  }
  length = sizeof(value);
  if (getsockopt(fd, SOL_SOCKET, SO_PROTOCOL, &value, &length) != 0 || value != IPPROTO_TCP) {
    return false;
  }
  sockaddr_storage peer{};
  socklen_t peer_length = sizeof(peer);
  return getpeername(fd, reinterpret_cast<sockaddr*>(&peer), &peer_length) == 0;
}

}  // namespace

SocketCensus SocketCensus::take() {
  SocketCensus census;
  for_each_socket([&](int, uint64_t inode) { census.socket_inodes_.insert(inode); });
  return census;
}

std::vector<int> SocketCensus::new_tcp_connections() const {
  std::vector<int> found;
  for_each_socket([&](int fd, uint64_t inode) {
    if (!socket_inodes_.contains(inode) && is_connected_tcp(fd)) found.push_back(fd);
  });
  return found;
}

}  // namespace torchwan::transport::ucx
