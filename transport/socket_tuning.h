// Tuning of data connections for long fat pipes: one TCP stream moves at most one socket buffer
// per round trip, and loss-based congestion control (cubic) collapses on a lossy long link where
// BBR keeps it full. What the kernel allows is read from /proc; whether a transport can apply the
// result depends on how much of its sockets its library exposes (see each transport).
#pragma once

#include <cstddef>
#include <string>
#include <vector>

#include "transport/options.h"

namespace torchwan::transport {

// Limits of the network namespace this process runs in. A value that cannot be read is 0, a list
// that cannot be read is empty.
struct KernelNetLimits {
  size_t send_buffer_cap = 0;       // net.core.wmem_max: caps an explicit SO_SNDBUF
  size_t receive_buffer_cap = 0;    // net.core.rmem_max: caps an explicit SO_RCVBUF
  size_t send_autotune_max = 0;     // net.ipv4.tcp_wmem[2]: where send autotuning stops
  size_t receive_autotune_max = 0;  // net.ipv4.tcp_rmem[2]
  std::vector<std::string> congestion_controls;  // net.ipv4.tcp_available_congestion_control
};
KernelNetLimits read_kernel_net_limits();

// What to set on each data socket; 0 or empty: leave the kernel's choice.
struct SocketTuning {
  int send_buffer = 0;     // SO_SNDBUF
  int receive_buffer = 0;  // SO_RCVBUF
  std::string congestion;  // TCP_CONGESTION
};

// An explicit buffer size turns autotuning off and is silently cut to the net.core cap, so a
// direction gets options.socket_buffer_bytes only when the cap admits all of it and it exceeds
// what autotuning could reach there; otherwise autotuning is the better choice. The congestion
// control is options.congestion when the kernel offers it.
SocketTuning plan_socket_tuning(const TransportOptions& options, const KernelNetLimits& limits);

// Sets `tuning` on TCP socket `fd`. Returns what could not be set ("" when everything was); a
// failure never breaks the connection, it only leaves the kernel's default.
std::string apply_socket_tuning(int fd, const SocketTuning& tuning);

// One line for logs: what the plan sets and why something is left to the kernel.
std::string describe_socket_tuning(const TransportOptions& options, const KernelNetLimits& limits,
                                   const SocketTuning& tuning);

}  // namespace torchwan::transport
