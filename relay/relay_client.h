// A member's side of the relay: one DEALER connected to a relay, registered under the member's
// id, sending bytes to other members per lane within the relay's window, and receiving theirs.
// Two ways to drive it: the blocking calls (send, flush, receive), or from a progress loop that
// polls handle() and never waits (room, send_now, poll_now, take). Not thread-safe: one thread
// drives a client.
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
  // The ZeroMQ context the DEALER lives in; null: the client makes one of its own. A shared
  // context must outlive the client.
  ::zmq::context_t* context = nullptr;
  // TCP congestion control of the connection to the relay (relay_tcp.h); empty: the system's.
  std::string congestion;
};

struct RelayedMessage {
  std::string peer;
  uint32_t lane = 0;
  ::zmq::message_t payload;  // as ZeroMQ received it: handed out without a copy
  std::span<const uint8_t> bytes() const {
    return {static_cast<const uint8_t*>(payload.data()), payload.size()};
  }
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

  // --- Without waiting, for a progress loop ---
  // The socket to poll for ZMQ_POLLIN: whatever arrives (credit, data, refusals) is read by
  // poll_now.
  void* handle() const { return dealer_->handle(); }
  // Bytes `peer` may be sent on `lane` now: the window less what it has not acknowledged.
  uint64_t room(const std::string& peer, uint32_t lane);
  // Sends `bytes` (at most min(room, max_chunk_bytes)) as one chunk, without waiting. Throws
  // RelayError when the relay refused us or reported no route to `peer`.
  void send_now(const std::string& peer, uint32_t lane, std::span<const uint8_t> bytes);
  // Reads whatever the relay sent, without waiting; chunks from peers wait for take().
  void poll_now() { pump(std::chrono::milliseconds(0)); }
  // The oldest chunk read, credited back to its sender as it is handed out.
  std::optional<RelayedMessage> take();
  // Why the relay dropped this member; empty while it did not.
  const std::string& refusal() const { return refused_; }
  // Why the relay has no route to a peer, each reported once: (peer, reason) pairs.
  std::vector<std::pair<std::string, std::string>> take_no_routes();

  const std::string& endpoint() const { return endpoint_; }
  // Why options.congestion could not be set on the connection; empty when it was (or none given).
  const std::string& tuning_problem() const { return tuning_problem_; }
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
  std::optional<::zmq::context_t> own_context_;  // when options_.context is null
  ::zmq::context_t& context_;
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
  std::string tuning_problem_;
};

}  // namespace torchwan::relay
