// The relay: one ZeroMQ ROUTER that forwards lanes between members of a job that cannot reach
// each other. It only moves bytes (the transports authenticate and encrypt relayed lanes end to
// end); what it enforces is admission (CURVE with the job secret, when one is set), per-stream
// flow control and a memory bound. See docs/relay.md.
//
// Memory: a stream (source, destination, lane) may have at most `window_bytes` that its receiver
// has not acknowledged with CREDIT, wherever those bytes sit (the relay's queue, ZeroMQ's pipes,
// the sockets); a sender that exceeds its window is dropped. At most `max_streams` streams carry
// bytes at once, so what the relay holds for streams is at most max_streams x window_bytes.
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <zmq.hpp>

#include "relay/relay_options.h"

namespace spdlog {
class logger;
}

namespace torchwan::elastic {
class SocketMonitor;
class ZapHandler;
}  // namespace torchwan::elastic

namespace torchwan::relay {

class RelayForwarder;

class RelayServer {
 public:
  explicit RelayServer(RelayOptions options);
  ~RelayServer();
  RelayServer(const RelayServer&) = delete;
  RelayServer& operator=(const RelayServer&) = delete;

  // Binds and starts serving on a thread of its own. Throws zmq::error_t when it cannot bind.
  void start();
  void stop();
  bool running() const { return thread_.joinable(); }

  int port() const { return port_; }
  // tcp://host:port, with a wildcard host replaced by loopback (for tests and local clients).
  std::string endpoint() const;
  RelayStats stats() const;

 private:
  void serve(::zmq::socket_t router);
  // Logs failed CURVE handshakes (a client without the job's secret) and counts them; sets the
  // congestion control of accepted connections.
  void watch_handshakes(elastic::SocketMonitor& monitor, RelayForwarder& forwarder);

  RelayOptions options_;
  std::shared_ptr<spdlog::logger> log_;
  ::zmq::context_t context_;
  std::unique_ptr<elastic::ZapHandler> zap_;
  int port_ = 0;
  std::atomic<bool> stopping_{false};
  mutable std::mutex stats_mutex_;
  RelayStats stats_;
  bool congestion_warned_ = false;  // serving thread only
  std::thread thread_;
};

}  // namespace torchwan::relay
