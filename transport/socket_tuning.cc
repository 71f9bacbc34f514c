#include "transport/socket_tuning.h"

#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <fstream>
#include <sstream>

namespace torchwan::transport {

namespace {

// The whitespace-separated words of a /proc file; empty when it cannot be read.
std::vector<std::string> read_words(const std::string& path) {
  std::ifstream file(path);
  std::vector<std::string> words;
  std::string word;
  while (file >> word) words.push_back(word);
  return words;
}

// Word `index` of a /proc file as a size, or 0.
size_t read_size(const std::string& path, size_t index) {
  const std::vector<std::string> words = read_words(path);
  if (index >= words.size()) return 0;
  try {
    return static_cast<size_t>(std::stoull(words[index]));
  } catch (const std::exception&) {
    return 0;
  }
}

int buffer_for(size_t wanted, size_t cap, size_t autotune_max) {
  if (wanted == 0 || wanted > cap || wanted <= autotune_max) return 0;
  return static_cast<int>(wanted);
}

}  // namespace

KernelNetLimits read_kernel_net_limits() {
  KernelNetLimits limits;
  limits.send_buffer_cap = read_size("/proc/sys/net/core/wmem_max", 0);
  limits.receive_buffer_cap = read_size("/proc/sys/net/core/rmem_max", 0);
  limits.send_autotune_max = read_size("/proc/sys/net/ipv4/tcp_wmem", 2);
  limits.receive_autotune_max = read_size("/proc/sys/net/ipv4/tcp_rmem", 2);
  limits.congestion_controls = read_words("/proc/sys/net/ipv4/tcp_available_congestion_control");
  return limits;
}

SocketTuning plan_socket_tuning(const TransportOptions& options, const KernelNetLimits& limits) {
  SocketTuning tuning;
  tuning.send_buffer =
      buffer_for(options.socket_buffer_bytes, limits.send_buffer_cap, limits.send_autotune_max);
  tuning.receive_buffer = buffer_for(options.socket_buffer_bytes, limits.receive_buffer_cap,
                                     limits.receive_autotune_max);
  const auto& offered = limits.congestion_controls;
  if (!options.congestion.empty() &&
      std::find(offered.begin(), offered.end(), options.congestion) != offered.end()) {
    tuning.congestion = options.congestion;
  }
  return tuning;
}

std::string apply_socket_tuning(int fd, const SocketTuning& tuning) {
  std::string problems;
  auto note = [&](const std::string& what) {
    problems += (problems.empty() ? "" : "; ") + what + ": " + std::strerror(errno);
  };
  if (tuning.send_buffer > 0 &&
      setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &tuning.send_buffer, sizeof(int)) != 0) {
    note("SO_SNDBUF");
  }
  if (tuning.receive_buffer > 0 &&
      setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &tuning.receive_buffer, sizeof(int)) != 0) {
    note("SO_RCVBUF");
  }
  if (!tuning.congestion.empty() &&
      setsockopt(fd, IPPROTO_TCP, TCP_CONGESTION, tuning.congestion.data(),
                 static_cast<socklen_t>(tuning.congestion.size())) != 0) {
    note("TCP_CONGESTION " + tuning.congestion);
  }
  return problems;
}

std::string describe_socket_tuning(const TransportOptions& options, const KernelNetLimits& limits,
                                   const SocketTuning& tuning) {
  std::ostringstream text;
  auto buffer = [&](const char* name, int chosen, size_t cap, size_t autotune_max) {
    text << name << "=";
    if (chosen > 0) {
      text << chosen;
    } else if (options.socket_buffer_bytes == 0) {
      text << "autotuned (socket_buffer_bytes=0)";
    } else if (options.socket_buffer_bytes > cap) {
      text << "autotuned up to " << autotune_max << " (net.core cap " << cap << " is below "
           << options.socket_buffer_bytes << ")";
    } else {
      text << "autotuned up to " << autotune_max;
    }
  };
  buffer("send buffer", tuning.send_buffer, limits.send_buffer_cap, limits.send_autotune_max);
  text << ", ";
  buffer("receive buffer", tuning.receive_buffer, limits.receive_buffer_cap,
         limits.receive_autotune_max);
  text << ", congestion=" << (tuning.congestion.empty() ? "system default" : tuning.congestion);
  if (tuning.congestion.empty() && !options.congestion.empty()) {
    text << " (" << options.congestion << " not offered by the kernel)";
  }
  return text.str();
}

}  // namespace torchwan::transport
