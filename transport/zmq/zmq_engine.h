// ZeroMQ's link under the core's LinkTransport (transport/core/link.h): one ZMQ context whose
// sockets only the core's progress thread touches (ZMQ sockets are not thread-safe). It sleeps in
// zmq_poll on the sockets and the core's wakeup descriptor, on which it also hangs a mailbox of
// its own for "ZMQ let go of this send buffer" notices from ZMQ's I/O thread.
//
// Topology: each rank binds one ROUTER per lane and, for every peer and lane, connects a DEALER to
// that peer's lane ROUTER, so every (peer, lane) is its own TCP connection in each direction and a
// striped message fills a high bandwidth-delay link. Each DEALER's first message is a hello; the
// constructor returns once every peer's hello arrived on every lane.
//
// Reachability (the connection ladder, docs/reachability.md): a ROUTER listens on every candidate
// address of the rank (zmq_records.h). Before connecting, a bounded dial phase probes each peer's
// candidates and every rank publishes whom it reached; from those records every rank derives the
// same rung per pair. Direct: both reached each other, the topology above. Reverse: only one side
// reached the other; its DEALERs carry both directions: the dialed side sends over its ROUTER to
// the dialer's routing ids, the dialer reads data (and a hello proving the peer) from its
// DEALERs. Neither: with relays given (TransportOptions::relay) both register their lanes at a
// relay and the pair's frames travel through it (zmq_relay_link.h), with heartbeats of the
// transport's own since no connection joins the two; without, group creation fails naming both
// ranks and every address tried.
//
// Authentication (with TransportOptions::secret_file): a hello carries a proof of the job secret
// over the receiver's fresh nonce (see transport/secure/data_auth.h). ZMQ binds a routing id to one
// connection for the connection's life, so once a routing id's hello passed, everything under it
// comes from that authenticated connection. Before that, anything that is not a valid hello is
// dropped and its connection shut down, with a logged reason, and the rank it claimed to be stays
// welcome to connect; without a secret such a message fails bootstrap as before.
//
// Failure: a DEALER or ROUTER connection that drops (TCP reset, or no heartbeat reply within
// peer_timeout) or a malformed message loses that peer for good: every request to or from it fails,
// the failure handler runs, its sockets close, and later calls naming it fail at once.
//
// Departure: the destructor fails pending receives, then sends a goodbye on every DEALER behind
// every send still queued there (completed or not), and waits for each peer to acknowledge it
// (at most peer_timeout while sends are pending, else min(peer_timeout, 2 s)), so everything sent
// before is delivered before the connections close. A peer that got goodbyes on all lanes has
// seen all the rank sent: it counts the rank as lost ("it left the group") and fails the receives
// still waiting for it, but later receives still take the messages that arrived before.
#pragma once

#include <chrono>
#include <cstdint>
#include <deque>
#include <exception>
#include <memory>
#include <optional>
#include <string>
#include <unordered_map>
#include <vector>
#include <zmq.hpp>

#include "base/log.h"
#include "transport/core/control_wire.h"
#include "transport/core/departures.h"
#include "transport/core/inbound_matcher.h"
#include "transport/core/link.h"
#include "transport/core/mailbox.h"
#include "transport/core/peer_liveness.h"
#include "transport/core/peer_table.h"
#include "transport/errors.h"
#include "transport/link_rung.h"
#include "transport/options.h"
#include "transport/request.h"
#include "transport/secure/data_auth.h"
#include "transport/socket_tuning.h"
#include "transport/store.h"
#include "transport/transport.h"
#include "transport/zmq/zmq_monitored_socket.h"
#include "transport/zmq/zmq_outbound.h"
#include "transport/zmq/zmq_records.h"
#include "transport/zmq/zmq_relay_link.h"

namespace torchwan::transport::zmq_detail {

class Engine final : public core::Link {
 public:
  // Binds, publishes this rank's endpoints, connects to every peer and exchanges hellos, all
  // before setup.deadline. Throws TransportError(kBootstrap) naming the ranks that did not
  // answer.
  explicit Engine(core::LinkSetup& setup);
  Engine(const Engine&) = delete;
  Engine& operator=(const Engine&) = delete;

  // "zmq transport rank R", the prefix of every message this rank's transport writes.
  static std::string who(int rank);
  std::string who() const { return who(rank_); }

  // --- core::Link ---
  // Per rank the rung that carries its lanes; fixed once the constructor returned.
  std::vector<LinkRung> rungs() const override { return rungs_; }
  void start_send(core::PostedSend send) override;
  // `receive.peer` may be kAnySource (see transport/core/inbound_matcher.h for how those match).
  void start_receive(core::PostedReceive receive) override;
  std::optional<int> claimable_sender(const core::PostedReceive& receive) override {
    return inbound_.claimable_sender(receive.tag);
  }
  void cancel(uint64_t id) override;
  void abort(const core::Failure& failure, const std::string& reason) override;
  // Flushes the lanes and takes what is ready, without waiting.
  bool progress_once() override;
  // ZeroMQ's sockets signal edge-triggered: nothing to arm, and no descriptor another link could
  // sleep on; this link sleeps in zmq_poll, with other descriptors among its items.
  bool prepare_to_sleep() override { return true; }
  std::optional<int> event_descriptor() const override { return std::nullopt; }
  // With relayed peers, their heartbeats; else none.
  std::chrono::milliseconds sleep_limit() const override {
    return relay_ ? relay_heartbeat_interval() : kNoTimeout;
  }
  // zmq_poll on the sockets, the wakeup and `extra_fds` (bounded by the relayed peers'
  // heartbeats); handles what it woke for.
  void sleep(const std::vector<int>& extra_fds, std::chrono::milliseconds timeout) override;
  // Fails pending receives, says goodbye on every lane behind the sends still queued there, waits
  // (bounded) for the peers to acknowledge, then fails what did not leave and closes.
  void leave() override;

 private:
  // Our ROUTER for one lane: every peer's DEALER for that lane connects to it.
  struct ReceiveLane {
    MonitoredSocket router;
    // Which peer each accepted connection belongs to (learned from its hello), so that a
    // disconnect event, which names only the descriptor, names the peer.
    std::unordered_map<int, int> peer_by_fd;
    uint64_t strangers = 0;  // messages dropped from senders that are not ranks of this group
  };
  // Which connections carry a peer's lanes, per the rung of the pair.
  enum class Carrier : uint8_t {
    kSplit,        // direct: we send on our DEALER and receive on our ROUTER
    kOurDealer,    // reverse, we dialed: our DEALER carries both directions
    kTheirDealer,  // reverse, they dialed: their DEALER's connection to our ROUTER carries both
    kRelay,        // neither can dial the other: a relay carries both directions
  };
  // The way to one peer's lane: our DEALER to it, or (kTheirDealer) our ROUTER addressing its
  // DEALER by routing id; with the frames waiting for room.
  struct SendLane {
    int peer = -1;
    int lane = -1;
    Carrier carrier = Carrier::kSplit;
    std::string endpoint;
    MonitoredSocket dealer;
    bool routed = false;   // kTheirDealer and not lost: sends go through our ROUTER
    bool relayed = false;  // kRelay and not lost: sends go through relay_
    std::deque<OutgoingFrame> queue;
    RelayedRecord relay_out;   // kRelay: the record leaving now, as credit allows
    std::string last_problem;  // for the bootstrap timeout message
    bool bye_acked = false;

    bool open() const { return dealer || routed || relayed; }
  };
  // Candidate hosts dialed per peer, at most; a record may list more.
  static constexpr size_t kMaxProbedHosts = 16;
  // One dial of a peer candidate address during the dial phase: an anonymous DEALER (it never
  // sends, so the peer's ROUTER treats it as a stranger) whose ZMTP handshake proves the address.
  struct Probe {
    int peer = -1;
    size_t host = 0;  // index into the peer's candidate hosts
    std::string endpoint;
    MonitoredSocket dealer;
    bool connected = false;
    bool failed = false;  // refused or unreachable at least once
  };
  enum class PollTarget {
    kWakeup,
    kRouter,
    kRouterMonitor,
    kDealer,
    kDealerInbound,
    kDealerMonitor,
    kRelay,
    kExtra
  };

  // --- bootstrap (constructor thread, before the progress thread exists) ---
  // Binds each lane's ROUTER on every candidate host (the configured one, else all interfaces).
  AddressRecord bind_lanes();
  std::vector<AddressRecord> read_peer_addresses(Store& store,
                                                 std::chrono::steady_clock::time_point deadline);
  // --- the connection ladder (zmq_engine_ladder.cc) ---
  // How long the dial phase lasts at most: min(connect_timeout / 4, dial_timeout).
  std::chrono::milliseconds dial_phase_limit() const;
  // Dials every peer's candidates until each peer answered or ran out of candidates, or the dial
  // budget is spent; returns per peer the index of the first candidate host that answered.
  std::vector<std::optional<size_t>> dial_candidates(
      const std::vector<AddressRecord>& addresses, std::chrono::steady_clock::time_point deadline);
  // Publishes whom this rank reached, reads everyone else's, and sets rungs_ and each peer's
  // carrier; throws TransportError(kBootstrap) for a pair that no rung connects.
  void choose_rungs(Store& store, const std::vector<AddressRecord>& addresses,
                    const std::vector<std::optional<size_t>>& reached,
                    std::chrono::steady_clock::time_point deadline);
  // With pairs that only a relay connects: registers this rank's lanes at a relay, publishes
  // where, and reads where each relayed peer registered. Throws TransportError(kBootstrap).
  void open_relay(Store& store, std::chrono::steady_clock::time_point deadline);
  void connect_lanes(const std::vector<AddressRecord>& addresses,
                     const std::vector<std::optional<size_t>>& reached);
  void await_hellos(std::chrono::steady_clock::time_point deadline);
  static OutgoingFrame control_frame(const core::ControlMessage& message);
  // Peers with at least one lane whose hello has not arrived yet.
  int missing_hello_peers() const;
  std::string describe_missing_hellos() const;

  // --- progress ---
  // Waits in zmq_poll (a negative timeout: without limit) on the sockets, the wakeup and
  // `extra_fds`, and handles what is ready. True when anything was.
  bool poll_once(std::chrono::milliseconds timeout, const std::vector<int>& extra_fds = {});
  void handle_releases();
  void drain_router(int lane);
  // Where a message came in: on our ROUTER under `routing`, or (routing null) on our DEALER.
  struct Arrival {
    int peer;
    int lane;
    const ::zmq::message_t* routing;
  };
  void handle_message(int lane, const ::zmq::message_t& routing,
                      std::vector<::zmq::message_t>& parts, size_t frames);
  void handle_frames(const Arrival& arrival, std::vector<::zmq::message_t>& parts, size_t frames);
  void handle_control(const Arrival& arrival, const ::zmq::message_t& header_frame,
                      const ::zmq::message_t& body, bool greeted);
  void handle_hello(const Arrival& arrival, const ::zmq::message_t& header_frame,
                    const core::Hello& hello);
  // Acknowledges a goodbye on the connection it came on: everything the peer sent on that lane
  // arrived.
  void acknowledge_goodbye(const Arrival& arrival);
  // Reads what comes back on a DEALER: only goodbye acks while leaving, unless the DEALER carries
  // both directions (kOurDealer), when everything the peer sends arrives here.
  void drain_dealer(SendLane& link);
  void note_stranger(int lane, const std::string& why);
  // A message under the routing id of `peer` on `lane` before that connection authenticated, that
  // is not a valid hello: drops it, logs why, shuts the connection that sent it down and keeps
  // the reason for the bootstrap timeout message.
  void refuse_connection(int peer, int lane, const ::zmq::message_t& frame, const std::string& why);
  void drain_router_monitor(int lane);
  void drain_dealer_monitor(SendLane& lane);
  // Sends what the lane's queue holds as far as ZMQ takes it: through the lane's DEALER, or for
  // a kTheirDealer lane through our ROUTER, addressed to the peer's routing id.
  void flush(SendLane& lane);
  // A kRelay lane's queue, record by record, as far as the relay's window admits.
  void flush_relayed(SendLane& lane);
  void flush_all();
  // Hands what came through the relay to handle_frames, and loses the peers it reports gone.
  void drain_relay();
  // Relayed peers: a heartbeat to each that heard nothing from this rank for a while, and the
  // loss of each that sent nothing for peer_timeout.
  void keep_relayed_peers_alive();
  std::chrono::milliseconds relay_heartbeat_interval() const {
    return relay_liveness_.heartbeat_interval();
  }

  // Fails `op` with kCanceled, recalls its queued pieces and tells the receiver; may destroy it.
  void cancel_send(SendOp& op);
  // Marks the peer lost (kind kPeerLost or kProtocol), fails its requests, closes its DEALERs and
  // calls the failure handler. During bootstrap it records why the constructor must fail.
  // `departed`: it said goodbye on every lane, so whole messages it sent stay claimable.
  void lose_peer(int peer, ErrorKind kind, const std::string& cause, bool departed = false);
  // Fails every pending request with `failure`; later ones fail at once.
  void fail_everything(const core::Failure& failure);
  void close_sockets();
  // Abort: fail everything and close every socket at once.
  void shut_down(const core::Failure& failure);
  // leave()'s first part: the goodbye handshake, so that every send is delivered before the
  // connections close; then fail what did not leave in time, and close.
  void say_goodbye();

  SendLane& send_lane(int peer, int lane) {
    return send_lanes_[static_cast<size_t>(peer * options_.lanes + lane)];
  }
  const TransportOptions options_;
  const int rank_;
  const int size_;
  std::shared_ptr<spdlog::logger> log_;
  const SocketTuning tuning_;
  DataAuth auth_;

  // Shared with other threads.
  core::PeerTable& peers_;
  core::Wakeup& wakeup_;
  core::Mailbox<uint64_t> releases_{wakeup_};  // ids of SendOps whose zero-copy piece ZMQ released

  // Progress-thread state. Declaration order matters for destruction: sockets close first, then
  // the context terminates (running the last release callbacks, which touch send_ops_ and
  // releases_), and only then do send_ops_ and releases_ go.
  core::LaneSet<SendOp> send_ops_;
  ::zmq::context_t context_;
  std::vector<ReceiveLane> receive_lanes_;
  std::vector<SendLane> send_lanes_;  // indexed by peer * lanes + lane; this rank's stay closed
  std::vector<LinkRung> rungs_;       // per rank
  std::vector<Carrier> carriers_;     // per rank
  std::vector<Probe> probes_;         // during the dial phase only
  // Lanes through a relay, for the pairs that need one; after context_, so it closes first.
  std::unique_ptr<RelayLink> relay_;
  // Relayed peers' signs of life and this rank's to them; silence counts once the group formed.
  core::PeerLiveness relay_liveness_;
  core::InboundMatcher inbound_;
  std::unordered_map<uint64_t, uint64_t> next_send_index_;  // per (peer << 48 | tag)
  std::vector<char> hello_seen_;                            // per peer * lanes + lane
  core::Departures departures_;
  std::vector<std::string> refusals_;  // per peer * lanes + lane: why its last hello was refused
  int hellos_missing_ = 0;
  std::vector<char> lost_;  // per peer; the progress thread's copy of peers_
  bool bootstrapped_ = false;
  std::string bootstrap_failure_;
  bool shut_down_ = false;  // sockets closed
  bool stopping_ = false;   // leaving: the transport is being destroyed
  bool leaving_ = false;    // saying goodbye
  std::vector<zmq_pollitem_t> poll_items_;
  std::vector<std::pair<PollTarget, size_t>> poll_targets_;
};

}  // namespace torchwan::transport::zmq_detail
