// UCX opens its TCP connections itself and hands none of them out, so the congestion control a
// transport chose (TransportOptions::congestion) cannot be set when a socket is made. It can be
// set afterwards: the sockets are descriptors of this process, and Linux switches the congestion
// control of an established connection in place. The engine takes a census of the sockets open
// before its workers exist; once connected, every TCP connection that appeared since is one of
// UCX's (or, rarely, one another thread opened meanwhile, which only gets the same tuning).
#pragma once

#include <cstdint>
#include <unordered_set>
#include <vector>

namespace torchwan::transport::ucx {

class SocketCensus {
 public:
  // The sockets this process holds now.
  static SocketCensus take();

  // Descriptors of the connected TCP sockets (IPv4 or IPv6) this process holds now that were not
  // in the census.
  std::vector<int> new_tcp_connections() const;

 private:
  std::unordered_set<uint64_t> socket_inodes_;
};

}  // namespace torchwan::transport::ucx
