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

#include "transport/secure/job_secret.h"

namespace spdlog {
class logger;
}

namespace torchwan::elastic {
class ZapHandler;
}

namespace torchwan::relay {

struct RelayOptions {
  std::string host = "0.0.0.0";
  int port = 0;  // 0: any free port (see RelayServer::port())
  // When set, the relay is a CURVE server admitting only holders of this secret.
  std::optional<security::JobSecret> secret;
  size_t max_streams = 1024;
  uint64_t window_bytes = 4ull << 20;
  uint32_t max_chunk_bytes = 256u << 10;  // the largest DATA payload the relay accepts
  // Caps max_streams so that max_streams x window_bytes stays within it.
  uint64_t max_memory_bytes = 4096ull << 20;
};

// Throws std::invalid_argument naming the option when options cannot work (zero window, a chunk
// above the window, a memory bound below one window).
void validate(const RelayOptions& options);
// max_streams, lowered so that streams x window fits max_memory_bytes.
size_t effective_max_streams(const RelayOptions& options);

struct RelayStats {
  size_t members = 0;            // registered members
  size_t streams = 0;            // streams with bytes in flight
  uint64_t in_flight_bytes = 0;  // forwarded or queued, not yet credited by their receivers
  uint64_t queued_bytes = 0;     // held in the relay's own per-destination queues
  uint64_t peak_queued_bytes = 0;
  uint64_t peak_in_flight_bytes = 0;
  uint64_t forwarded_bytes = 0;
  uint64_t dropped_clients = 0;  // malformed input, floods, impersonation attempts
  uint64_t refused_streams = 0;  // NO_ROUTE answers: unknown member or stream limit
  uint64_t handshake_failures = 0;
};

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
  class Loop;

  RelayOptions options_;
  std::shared_ptr<spdlog::logger> log_;
  ::zmq::context_t context_;
  std::unique_ptr<elastic::ZapHandler> zap_;
  int port_ = 0;
  std::atomic<bool> stopping_{false};
  mutable std::mutex stats_mutex_;
  RelayStats stats_;
  std::thread thread_;
};

}  // namespace torchwan::relay
