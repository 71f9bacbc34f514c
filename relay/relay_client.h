// A member's side of the relay: one DEALER connected to a relay, registered under the member's
// id, sending bytes to other members per lane within the relay's window, and receiving theirs.
// Not thread-safe: one thread drives a client (the transports' progress thread, later).
#pragma once

#include <chrono>
#include <cstdint>
#include <deque>
#include <map>
#include <memory>
#include <optional>
#include <span>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>
#include <zmq.hpp>

#include "transport/secure/job_secret.h"

namespace torchwan::elastic {
class SocketMonitor;
}

namespace torchwan::relay {

class RelayError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

// "host:port[,host:port]" (TORCHWAN_RELAY) as ZeroMQ endpoints; throws std::invalid_argument
// naming the bad entry.
std::vector<std::string> parse_relay_endpoints(const std::string& list);

struct RelayClientOptions {
  std::vector<std::string> endpoints;  // tried in order; the first that registers us is used
  std::string job_id;
  std::string member;
  std::optional<security::JobSecret> secret;
  // For registering, and for each wait for credit: a relay or peer silent this long is an error.
  std::chrono::milliseconds timeout{10000};
};

struct RelayedMessage {
  std::string peer;
  uint32_t lane = 0;
  std::vector<uint8_t> bytes;
};

class RelayClient {
 public:
  // Connects and registers; throws RelayError naming each endpoint tried and why it failed.
  explicit RelayClient(RelayClientOptions options);
  ~RelayClient();
  RelayClient(const RelayClient&) = delete;
  RelayClient& operator=(const RelayClient&) = delete;

  // Sends `bytes` to `peer` on `lane` in chunks, waiting for credit whenever the window is full.
  // Throws RelayError when the relay has no route to the peer, refused us, or no credit came
  // within the timeout.
  void send(const std::string& peer, uint32_t lane, std::span<const uint8_t> bytes);
  // Waits until everything sent to `peer` on `lane` was credited by the peer (delivered).
  void flush(const std::string& peer, uint32_t lane);
  // The next chunk from any peer, credited back as it is handed out; nullopt on timeout.
  std::optional<RelayedMessage> receive(std::chrono::milliseconds timeout);

  const std::string& endpoint() const { return endpoint_; }
  uint64_t window_bytes() const { return window_bytes_; }
  uint32_t max_chunk_bytes() const { return max_chunk_bytes_; }

 private:
  using Stream = std::pair<std::string, uint32_t>;  // peer, lane

  bool try_register(const std::string& endpoint, std::string& why);
  // Handles what arrived within `timeout`; false when nothing did.
  bool pump(std::chrono::milliseconds timeout);
  void wait_for_credit(const Stream& stream, uint64_t wanted_free);
  void throw_if_failed(const std::string& peer);

  RelayClientOptions options_;
  ::zmq::context_t context_;
  std::unique_ptr<::zmq::socket_t> dealer_;
  std::unique_ptr<elastic::SocketMonitor> monitor_;
  std::string endpoint_;
  int attempts_ = 0;
  uint64_t window_bytes_ = 0;
  uint32_t max_chunk_bytes_ = 0;
  std::map<Stream, uint64_t> in_flight_;
  std::deque<RelayedMessage> inbox_;
  std::map<std::string, std::string> no_route_;  // peer -> the relay's reason
  std::string refused_;                          // set once the relay dropped us
};

}  // namespace torchwan::relay
