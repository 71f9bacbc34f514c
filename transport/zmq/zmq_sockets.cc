#include "transport/zmq/zmq_sockets.h"

#include <algorithm>
#include <chrono>
#include <cstring>
#include <limits>

#include "transport/zmq/zmq_wire.h"

namespace torchwan::transport::zmq_detail {

namespace {

int clamp_ms(std::chrono::milliseconds value, long long low, long long high) {
  return static_cast<int>(std::clamp<long long>(value.count(), low, high));
}

bool is_ipv6(const std::string& host) { return host.find(':') != std::string::npos; }

void configure_common(::zmq::socket_t& socket, const TransportOptions& options,
                      const SocketTuning& tuning) {
  // Sized for the bandwidth-delay product only where the kernel admits the whole size (see
  // plan_socket_tuning); otherwise ZMQ leaves autotuning alone.
  if (tuning.send_buffer > 0) socket.set(::zmq::sockopt::sndbuf, tuning.send_buffer);
  if (tuning.receive_buffer > 0) socket.set(::zmq::sockopt::rcvbuf, tuning.receive_buffer);
  // Stop at once on close: an unsent piece of a dead transport has nobody to go to.
  socket.set(::zmq::sockopt::linger, 0);
  // Lets a DEALER reach peers that published IPv6 endpoints, and a ROUTER bind an IPv6 host.
  socket.set(::zmq::sockopt::ipv6, 1);

  // A ping every fifth of the timeout; the connection drops when nothing answers a ping within
  // three fifths. A peer that falls silent right after a ping is caught after at most
  // interval + timeout = 4/5 of peer_timeout, which leaves room for the event to reach us.
  const int timeout_ms = clamp_ms(options.peer_timeout, 50, 6'553'599);
  const int interval_ms = std::max(10, timeout_ms / 5);
  socket.set(::zmq::sockopt::heartbeat_ivl, interval_ms);
  socket.set(::zmq::sockopt::heartbeat_timeout, timeout_ms - 2 * interval_ms);
  // Asks the other end to drop the connection when it hears nothing from us for peer_timeout.
  socket.set(::zmq::sockopt::heartbeat_ttl, timeout_ms);

  // Kernel-level backup for connections whose peer host vanished without a reset.
  const int timeout_s = std::max(1, timeout_ms / 1000);
  socket.set(::zmq::sockopt::tcp_keepalive, 1);
  socket.set(::zmq::sockopt::tcp_keepalive_idle, timeout_s);
  socket.set(::zmq::sockopt::tcp_keepalive_intvl, std::max(1, timeout_s / 3));
  socket.set(::zmq::sockopt::tcp_keepalive_cnt, 3);
}

}  // namespace

std::string bind_endpoint(const std::string& host) {
  return is_ipv6(host) ? "tcp://[" + host + "]:*" : "tcp://" + host + ":*";
}

void configure_router(::zmq::socket_t& router, const TransportOptions& options,
                      const SocketTuning& tuning) {
  configure_common(router, options, tuning);
  // Unbounded: ZMQ must keep reading every connection, even while our progress thread lags,
  // or it would stop reading the peer's heartbeats too and drop a healthy peer as silent. What
  // arrives is taken by the progress thread anyway (matched, or kept until its receive).
  router.set(::zmq::sockopt::rcvhwm, 0);
  // Frames are at most one chunk; anything bigger is foreign or hostile and ZMQ drops the
  // connection before allocating it.
  const auto largest = static_cast<int64_t>(std::max(options.chunk_bytes, kHeaderBytes));
  router.set(::zmq::sockopt::maxmsgsize, largest);
  // A reverse link sends data through the ROUTER (zmq_engine.h). Mandatory: a send to a peer
  // whose connection is gone fails (EHOSTUNREACH) instead of vanishing. Unbounded, so a send
  // never waits for one peer's pipe while the ROUTER, which serves every peer, polls writable.
  router.set(::zmq::sockopt::router_mandatory, 1);
  router.set(::zmq::sockopt::sndhwm, 0);
}

void configure_dealer(::zmq::socket_t& dealer, const TransportOptions& options,
                      const SocketTuning& tuning, int rank, int lane, bool carries_inbound) {
  configure_common(dealer, options, tuning);
  dealer.set(::zmq::sockopt::routing_id, ::zmq::buffer(routing_id(rank, lane)));
  dealer.set(::zmq::sockopt::sndhwm, kDealerSendQueueMessages);
  if (carries_inbound) {
    // The peer's data comes back on this connection: read it as a ROUTER reads its lane.
    dealer.set(::zmq::sockopt::rcvhwm, 0);
    dealer.set(::zmq::sockopt::maxmsgsize,
               static_cast<int64_t>(std::max(options.chunk_bytes, kHeaderBytes)));
  } else {
    // Nothing but goodbye acknowledgements comes back on a DEALER of a direct link.
    dealer.set(::zmq::sockopt::rcvhwm, 1);
    dealer.set(::zmq::sockopt::maxmsgsize, int64_t{1024});
  }
}

void configure_probe(::zmq::socket_t& probe, const TransportOptions& options,
                     std::chrono::milliseconds connect_timeout) {
  probe.set(::zmq::sockopt::linger, 0);
  probe.set(::zmq::sockopt::ipv6, 1);
  // A dropped SYN would otherwise wait for the kernel's retries (minutes); a timed-out attempt
  // reports CONNECT_RETRIED like a refused one.
  probe.set(::zmq::sockopt::connect_timeout,
            clamp_ms(connect_timeout, 100, std::numeric_limits<int>::max()));
  probe.set(::zmq::sockopt::reconnect_ivl, clamp_ms(options.peer_timeout / 50, 50, 1000));
  probe.set(::zmq::sockopt::rcvhwm, 1);
  probe.set(::zmq::sockopt::maxmsgsize, int64_t{1024});
}

::zmq::socket_t attach_monitor(::zmq::context_t& context, ::zmq::socket_t& socket,
                               const std::string& name, int events) {
  const std::string endpoint = "inproc://" + name;
  if (zmq_socket_monitor(socket.handle(), endpoint.c_str(), events) != 0) {
    throw ::zmq::error_t();
  }
  ::zmq::socket_t monitor(context, ::zmq::socket_type::pair);
  monitor.set(::zmq::sockopt::linger, 0);
  monitor.connect(endpoint);
  return monitor;
}

std::optional<MonitorEvent> read_monitor_event(::zmq::socket_t& monitor) {
  ::zmq::message_t first;
  if (!monitor.recv(first, ::zmq::recv_flags::dontwait)) return std::nullopt;
  // Frame 1: u16 event, u32 value (host order); frame 2: the endpoint, which we do not need.
  bool more = first.more();
  while (more) {
    ::zmq::message_t rest;
    if (!monitor.recv(rest, ::zmq::recv_flags::dontwait)) break;
    more = rest.more();
  }
  MonitorEvent event{};
  if (first.size() < 6) return event;  // event 0: ignored by every caller
  std::memcpy(&event.event, first.data(), sizeof(event.event));
  std::memcpy(&event.value, static_cast<const uint8_t*>(first.data()) + 2, sizeof(event.value));
  return event;
}

}  // namespace torchwan::transport::zmq_detail
