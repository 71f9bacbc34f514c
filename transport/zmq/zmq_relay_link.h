// The relayed rung of the ZeroMQ link (docs/reachability.md): lanes to peers that this rank and
// the peer can reach only through a torchwan-relay. Each lane is a relay member of its own (one
// DEALER, so one TCP connection per lane, as direct lanes have), registered under this rank's
// fresh member token and the lane number; the peer's lane L talks to ours.
//
// On a relayed lane the transport's [header, payload] frame pairs travel as one byte stream per
// (peer, lane), cut into relay chunks by the relay's window: each record is the payload's length
// (u64), the 64-byte header and the payload. The receiving side rebuilds the two frames and hands
// them to the engine as if they had arrived on a connection; the relay sees only these records
// (ciphertext when the group encrypts, which a relay makes the default: docs/relay.md).
//
// The relay is not trusted: it names the sender of each chunk, but whatever a rank accepts is
// what the engine accepts on any connection (a hello proving the job secret first; the job and
// epoch in every header). A record announcing more than one piece, or a chunk from a member that
// is no peer's lane, is a protocol error of that peer or a dropped chunk, never a crash.
#pragma once

#include <array>
#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <span>
#include <string>
#include <utility>
#include <vector>
#include <zmq.hpp>

#include "relay/relay_client.h"
#include "transport/zmq/zmq_wire.h"

namespace torchwan::transport::zmq_detail {

// The prefix of every relayed record: payload length, then the frame header.
inline constexpr size_t kRelayedRecordPrefixBytes = 8 + kHeaderBytes;

// One record on its way out, sent in chunks as credit allows: its prefix, then the frame's own
// payload message. Nothing is copied into the record: a large payload stays the zero-copy message
// into the sender's buffer, which is released (and the send may complete) once the record's
// last chunk went to ZeroMQ.
struct RelayedRecord {
  std::array<uint8_t, kRelayedRecordPrefixBytes> prefix{};
  std::optional<::zmq::message_t> payload;  // none: no record
  size_t sent = 0;                          // of the prefix and the payload together

  bool empty() const { return !payload; }
  size_t size() const { return prefix.size() + (payload ? payload->size() : 0); }
  // What is left of the prefix, or else of the payload: the next chunk is cut from it.
  std::span<const uint8_t> unsent() const;
  // The record as one byte stream (for tests and the fuzz harness's seeds).
  std::vector<uint8_t> bytes() const;
};
RelayedRecord make_relayed_record(const std::array<uint8_t, kHeaderBytes>& header,
                                  ::zmq::message_t payload);

// Rebuilds frame pairs from one (peer, lane) byte stream, whatever the chunking.
class RelayedStreamReader {
 public:
  // `max_payload_bytes`: the largest payload a record may announce (one piece).
  explicit RelayedStreamReader(size_t max_payload_bytes) : max_payload_(max_payload_bytes) {}
  // Consumes `bytes`, calling `deliver` with each complete [header, payload] pair. Returns why the
  // stream is malformed, or empty.
  std::string feed(std::span<const uint8_t> bytes,
                   const std::function<void(std::vector<::zmq::message_t>&)>& deliver);

 private:
  size_t max_payload_;
  std::array<uint8_t, kRelayedRecordPrefixBytes> prefix_{};
  size_t prefix_filled_ = 0;
  std::optional<::zmq::message_t> payload_;
  size_t payload_filled_ = 0;
};

class RelayLink {
 public:
  struct Settings {
    std::vector<std::string> endpoints;  // tried in order
    std::string job_id;                  // the relay's job key: the group's job and epoch
    std::string token;                   // this rank's fresh member token
    int lanes = 1;
    size_t max_payload_bytes = 0;
    std::optional<security::JobSecret> secret;
    std::chrono::milliseconds timeout{10000};
    ::zmq::context_t* context = nullptr;
    // TCP congestion control of each lane's connection to the relay; empty: the system's.
    std::string congestion;
  };
  // Registers every lane at the first relay that admits lane 0. Throws relay::RelayError naming
  // each relay tried and why it failed.
  explicit RelayLink(Settings settings);

  // Where the lanes registered, as peers must find it: "tcp://host:port".
  const std::string& endpoint() const;
  // Routes a peer's lanes: `token` is what it published.
  void add_peer(int rank, const std::string& token);
  // The lanes' sockets, for zmq_poll (ZMQ_POLLIN); fixed once registered, so the progress loop
  // reads them every turn without building a list.
  const std::vector<void*>& handles() const { return handles_; }

  // Sends what credit allows of `record` to `peer` on `lane`; true once all of it left.
  bool send(int peer, int lane, RelayedRecord& record);

  // What arrived: each complete frame pair of a peer's lane, and each problem.
  struct Problem {
    int peer = -1;  // -1: every relayed peer (this rank lost the relay)
    std::string why;
  };
  using Deliver = std::function<void(int peer, int lane, std::vector<::zmq::message_t>& parts)>;
  void receive(const Deliver& deliver, std::vector<Problem>& problems);
  // When something last arrived from `peer` (or the link opened).
  std::chrono::steady_clock::time_point last_heard(int peer) const;
  // Stops delivering what a lost peer sends (safe from within `deliver`).
  void forget(int peer);

 private:
  static std::string member_id(const std::string& token, int lane);
  // The rank whose token names `member`, and the lane part of the name; nothing for a stranger.
  std::optional<std::pair<int, std::string>> peer_of(const std::string& member) const;

  Settings settings_;
  std::vector<std::unique_ptr<relay::RelayClient>> lanes_;
  std::vector<void*> handles_;
  std::map<std::string, int> rank_by_token_;
  std::map<int, std::string> token_by_rank_;
  std::map<std::pair<int, int>, RelayedStreamReader> readers_;  // (peer, lane)
  std::map<int, std::chrono::steady_clock::time_point> heard_;
  std::set<int> forgotten_;
};

}  // namespace torchwan::transport::zmq_detail
