// The relay's rules, on the serving thread: who is registered under which connection, which
// streams carry bytes and how many, what waits for a slow receiver, and who was dropped. It reads
// the ROUTER, forwards DATA and CREDIT, answers NO_ROUTE and REFUSED, and enforces the windows and
// the stream limit (docs/relay.md). RelayServer owns the socket and the thread around it.
#pragma once

#include <functional>
#include <memory>
#include <zmq.hpp>

#include "relay/relay_options.h"

namespace spdlog {
class logger;
}

namespace torchwan::relay {

class RelayForwarder {
 public:
  // Receives the counters just before any frame leaves the relay, so that whatever a client has
  // seen (a refusal, a credit) is already counted when someone reads the stats.
  using StatsSink = std::function<void(const RelayStats&)>;

  // `router` must outlive the forwarder; only the forwarder's thread may use either.
  RelayForwarder(const RelayOptions& options, ::zmq::socket_t& router,
                 std::shared_ptr<spdlog::logger> log, StatsSink publish_stats);
  ~RelayForwarder();
  RelayForwarder(const RelayForwarder&) = delete;
  RelayForwarder& operator=(const RelayForwarder&) = delete;

  // Handles what waits on the router, up to a budget per call; false when nothing did.
  bool read_waiting();
  // Sends what waits for slow receivers and pending credit; probes receivers when due.
  void flush();
  // Something waits to be sent: the caller should poll briefly.
  bool busy() const;
  void count_handshake_failure();
  RelayStats stats() const;

 private:
  class Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace torchwan::relay
