// How the transport configures its ZMQ sockets, and reads their monitor events. Liveness comes from
// ZMTP heartbeats (they catch a peer that stopped answering while its TCP connection stays open)
// backed by TCP keepalive; both are derived from TransportOptions::peer_timeout.
#pragma once

#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <zmq.hpp>

#include "transport/options.h"
#include "transport/socket_tuning.h"

namespace torchwan::transport::zmq_detail {

// Pieces each DEALER may hold inside ZMQ; the rest wait in our queue, where they can still be
// canceled. 64 chunks of 4 MiB keep any link busy.
inline constexpr int kDealerSendQueueMessages = 64;

// The address to bind a lane's ROUTER to: tcp://host:* with the port picked by the kernel.
std::string bind_endpoint(const std::string& host);

// A ROUTER that accepts one connection per (peer, lane) and refuses frames over chunk_bytes.
// The buffer sizes of `tuning` apply to every connection (ZMQ_SNDBUF/ZMQ_RCVBUF); ZMQ 4.3 has no
// socket-creation hook, so the congestion control is set on each connection once the monitor
// reports it (ZMQ_EVENT_CONNECTED names its descriptor).
void configure_router(::zmq::socket_t& router, const TransportOptions& options,
                      const SocketTuning& tuning);
// A DEALER to one peer's lane, identified to it by routing_id(rank, lane). `carries_inbound`: the
// link is reverse and the peer's data comes back on it (zmq_engine.h).
void configure_dealer(::zmq::socket_t& dealer, const TransportOptions& options,
                      const SocketTuning& tuning, int rank, int lane, bool carries_inbound);
// An anonymous DEALER that only checks whether a candidate address answers within the dial phase.
void configure_probe(::zmq::socket_t& probe, const TransportOptions& options,
                     std::chrono::milliseconds connect_timeout);

struct MonitorEvent {
  uint16_t event;
  uint32_t value;  // the socket descriptor for connection events
};

// Starts zmq_socket_monitor on `socket` and returns the PAIR socket its events arrive on.
// `name` must be unique within `context`. Use it through MonitoredSocket, which stops the monitor
// before either socket closes.
::zmq::socket_t attach_monitor(::zmq::context_t& context, ::zmq::socket_t& socket,
                               const std::string& name, int events);
// The next event, or nothing when none is waiting (never blocks).
std::optional<MonitorEvent> read_monitor_event(::zmq::socket_t& monitor);

}  // namespace torchwan::transport::zmq_detail
