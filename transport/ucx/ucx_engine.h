// Everything that touches UCX, owned and called by the transport's progress thread only (the
// workers run in UCS_THREAD_MODE_SINGLE). One ucp_context; one ucp_worker per lane, so every lane
// to a peer is its own endpoint and TCP connection; one endpoint per (peer, lane).
//
// A message is a Transfer in the core's lane set (transport/core/lane_set.h), cut into pieces by
// plan_pieces; each piece is one UCX tagged operation on its lane, held from its post until UCX
// calls back. UCX completion callbacks only record what happened; the bookkeeping runs afterwards
// at a safe point (settle), so it never re-enters itself from inside a UCX call. A Request learns
// of a failure only once UCX has released every buffer of its transfer, except when the peer is
// lost or the transport aborted: then its endpoints are force-closed (no more bytes can land) and
// the Request fails at once (fail_now), so nothing ever waits on a dead peer.
//
// Connection ladder: for each pair the lower rank dials (creates its endpoints and sends a hello on
// every lane) and the higher rank answers each hello over an endpoint of its own, which UCX joins
// to the connection that brought the hello; so one side's reach is enough. A dialer whose peer
// does not answer within dial_timeout (counted once the peer is known to be progressing) asks it,
// through the store, to dial back: the reverse rung, for a peer behind a NAT or firewall. A pair
// that neither side reaches fails connect(), naming both ranks and every address tried.
//
// Liveness: a peer is lost on an endpoint error, an abort notice, or when nothing arrived from it
// for options.peer_timeout although it sends a heartbeat every quarter of that; so a killed,
// stopped or unreachable peer fails its requests within the timeout.
//
// Departure: a rank that shuts down first waits (at most peer_timeout) until UCX completed its
// user sends, so each was matched by the peer's receive or sits whole in the peer's unexpected
// queue, then says goodbye on every lane, behind that lane's data. A peer that got the goodbye
// on every lane has therefore seen everything the rank sent: it fails the receives still waiting
// (they can never be satisfied), but later receives are still matched against what arrived.
#pragma once

#include <ucp/api/ucp.h>

#include <chrono>
#include <cstdint>
#include <exception>
#include <memory>
#include <optional>
#include <string>
#include <unordered_set>
#include <vector>

#include "base/log.h"
#include "transport/core/any_source.h"
#include "transport/core/control_wire.h"
#include "transport/core/departures.h"
#include "transport/core/lane_set.h"
#include "transport/core/link.h"
#include "transport/core/peer_liveness.h"
#include "transport/core/peer_table.h"
#include "transport/errors.h"
#include "transport/link_rung.h"
#include "transport/options.h"
#include "transport/request.h"
#include "transport/secure/data_auth.h"
#include "transport/store.h"
#include "transport/striping.h"
#include "transport/ucx/ucx_handles.h"
#include "transport/ucx/ucx_socket_census.h"
#include "transport/ucx/ucx_wire.h"

namespace torchwan::transport::ucx {

// One message to start: what isend/irecv asked for.
struct TransferSpec {
  uint64_t id = 0;
  std::shared_ptr<Request> request;
  bool is_send = false;
  int peer = -1;
  Tag tag = 0;
  uint8_t* data = nullptr;
  size_t length = 0;
};

// UCX's link under the core's LinkTransport (transport/core/link.h).
class Engine final : public core::Link {
 public:
  // Creates the context and the workers. Throws TransportError.
  Engine(const TransportOptions& options, int rank, int size, core::PeerTable& peers);
  // Shuts down (bounded) if shutdown() was not called.
  ~Engine() override;
  Engine(const Engine&) = delete;
  Engine& operator=(const Engine&) = delete;

  // Adds a descriptor (the command queue's) whose readability ends wait_for_event.
  void watch_fd(int fd);
  // Publishes this rank's worker addresses, reaches every peer through the ladder above and
  // exchanges a hello with it on every lane; rungs() then says how each peer rank was reached.
  // Throws TransportError(kBootstrap) naming the ranks that did not answer before `deadline`.
  void connect(Store& store, std::chrono::steady_clock::time_point deadline);

  // --- core::Link ---
  std::vector<LinkRung> rungs() const override { return rungs_; }
  void start_send(core::PostedSend send) override;
  // `receive.peer` may be kAnySource: see irecv_any in ucx_transport.h.
  void start_receive(core::PostedReceive receive) override;
  // The rank whose message for `receive` waits unmatched in UCX, if any.
  std::optional<int> claimable_sender(const core::PostedReceive& receive) override;
  // Cancels what UCX can still cancel of transfer `id`; it then fails with kCanceled.
  void cancel(uint64_t id) override;
  // Fails every pending transfer with kAborted and closes every endpoint.
  void abort(const core::Failure& failure, const std::string& reason) override;
  bool progress_once() override { return progress(); }
  // Arms every worker (ucp_worker_arm); false when one already has events.
  bool prepare_to_sleep() override;
  // The epoll descriptor of the workers' and watched descriptors.
  std::optional<int> event_descriptor() const override { return epoll_.get(); }
  // Sleeps in epoll, or in poll on it and `extra_fds`: at most a tenth of a second, for the
  // liveness timers.
  void sleep(const std::vector<int>& extra_fds, std::chrono::milliseconds timeout) override;
  // The liveness timers run at least every tenth of a second.
  std::chrono::milliseconds sleep_limit() const override { return kLivenessTick; }
  void leave() override { shutdown(); }

  // Progresses every worker once and settles what completed. True when anything happened.
  bool progress();
  // Arms the workers, then sleeps until a worker or a watched descriptor has an event, or
  // `timeout` passes; returns at once when a worker has events already.
  void wait_for_event(std::chrono::milliseconds timeout);

  // Waits (at most peer_timeout) for the user's sends to complete, then fails everything pending,
  // says goodbye, closes the endpoints, and waits (bounded) for UCX to hand back every buffer.
  // Idempotent.
  void shutdown();

 private:
  struct Transfer;
  // How UCX carries one piece of a Transfer: one tagged operation on the piece's lane.
  struct Piece {
    Engine* engine;
    Transfer* transfer;
    int lane;
    size_t offset;  // within the message
    size_t length;
    void* ucx_request = nullptr;  // set while UCX holds the piece
    bool released = false;        // UCX called back (or never took it)
  };
  // A message in the core's lane set, with what UCX needs to post its pieces.
  struct Transfer : core::PiecedMessage {
    using core::PiecedMessage::PiecedMessage;
    bool internal = false;  // a hello, heartbeat or goodbye, not a user's message
    uint8_t* data = nullptr;
    ucp_tag_t wire_tag = 0;     // every piece carries it
    std::vector<Piece> pieces;  // one per planned piece; never resized once posted: UCX holds
                                // pointers to them
  };
  struct Completion {
    Piece* piece;
    ucs_status_t status;
    size_t received;
  };
  struct EndpointSlot {
    Engine* engine;
    int peer;
    int lane;
    ucp_ep_h ep = nullptr;
  };
  struct EndpointError {
    int peer;
    int lane;
    ucs_status_t status;
  };
  struct LostPeer {
    int peer;
    std::string cause;
  };
  struct ControlArrival {
    int peer;
    int lane;
    bool ok;  // false: the receive failed (canceled, or a message of the wrong size)
  };
  using Clock = std::chrono::steady_clock;
  // Bounds how late the liveness timers run when nothing arrives.
  static constexpr std::chrono::milliseconds kLivenessTick{100};

  static void on_send_done(void* request, ucs_status_t status, void* user_data);
  static void on_recv_done(void* request, ucs_status_t status, const ucp_tag_recv_info_t* info,
                           void* user_data);
  static void on_endpoint_error(void* arg, ucp_ep_h ep, ucs_status_t status);
  static void on_close_done(void* request, ucs_status_t status, void* user_data);

  // One peer's place on the ladder while connecting.
  struct PeerDial {
    bool dialing = false;   // this rank created the endpoints of the current attempt
    bool reversed = false;  // the lower rank could not dial: the higher one dials back
    bool peer_ready = false;
    bool done = false;
    Clock::time_point dial_deadline = Clock::time_point::max();
    std::string failure;                             // why this rank's dial failed, once it did
    std::vector<std::shared_ptr<Request>> sent;      // [lane]
    std::vector<std::shared_ptr<Request>> received;  // [lane]
    std::vector<bool> verified;                      // [lane]: its hello proved who it is
  };

  // --- connection setup (ucx_engine_connect.cc) ---
  std::vector<uint8_t> local_address(int lane);
  std::vector<AddressRecord> fetch_peer_addresses(Store& store,
                                                  std::chrono::steady_clock::time_point deadline);
  // --- the ladder (ucx_engine_dial.cc) ---
  std::vector<LinkRung> establish(Store& store, const std::vector<AddressRecord>& records,
                                  std::chrono::steady_clock::time_point deadline);
  ucs_status_t create_endpoint(int peer, int lane, const AddressRecord& record, ucp_ep_h& ep);
  void send_hello(int peer, int lane, PeerDial& dial);
  // Creates the endpoints to `peer` and sends the hellos; false (with dial.failure set) when
  // UCX refuses an endpoint at once.
  bool dial(int peer, PeerDial& dial, const std::vector<AddressRecord>& records);
  // Sends this rank's hello on `lane` over an endpoint made after the peer's hello arrived.
  void answer(int peer, int lane, PeerDial& dial, const std::vector<AddressRecord>& records);
  // "" when the hello that arrived from `peer` on `lane` is a valid, authenticated hello.
  std::string check_arrived_hello(int peer, int lane) const;
  // During connection setup an endpoint error of a dial in progress fails that dial, not the peer.
  bool absorb_dial_error(int peer, int lane, ucs_status_t status);
  // Sets the chosen congestion control on UCX's TCP connections (see ucx_socket_census.h).
  void tune_connections();

  // --- liveness (ucx_engine_liveness.cc) ---
  void start_liveness();
  void post_control_receive(int peer, int lane);
  std::shared_ptr<Request> send_control(int peer, int lane, std::vector<uint8_t>& message);
  void handle_control(const ControlArrival& arrival);
  void check_liveness();
  // Tells every live peer on every lane that this rank is leaving, and why.
  std::vector<std::shared_ptr<Request>> say_goodbye(bool aborting, const std::string& reason);
  // The peer said goodbye on every lane: fails what can no longer complete, keeps what arrived.
  void depart_peer(int peer, const std::string& cause);
  // Starts a receive from a departed peer; it fails at once unless its message already arrived.
  void start_receive_from_departed(TransferSpec spec);
  // --- transfers ---
  // Registers a transfer (cut by the core as the peer cuts it) and posts its pieces.
  Transfer& launch(std::unique_ptr<Transfer> transfer, uint8_t* data, ucp_tag_t wire_tag,
                   bool internal = false);
  // A user's message, cut with plan_pieces.
  std::unique_ptr<Transfer> user_transfer(TransferSpec& spec) const;
  // Starts a transfer whose peer is known.
  void start_exact(TransferSpec spec);
  // Turns pending any-source receives whose message is waiting in UCX into exact receives.
  // True when it did so for any.
  bool match_any_source();
  void fail_pending_any_source(ErrorKind kind, const std::string& why);
  // Sends or receives one internal message whole on `lane`.
  void launch_internal(std::shared_ptr<Request> request, bool is_send, int peer, int lane,
                       std::vector<uint8_t>& buffer, ucp_tag_t wire_tag);
  void post(Piece& piece);
  void settle();
  void finish_piece(const Completion& completion);
  void record_failure(Transfer& transfer, std::exception_ptr error, bool fail_request_now);
  void cancel_pieces(Transfer& transfer);
  // `quiet`: an orderly departure, logged at debug level only.
  void lose_peer(int peer, const std::string& cause, bool quiet = false);
  void close_endpoint(int peer, int lane, bool force);
  void close_endpoints(int peer, bool force);
  // Fails every transfer with kAborted, says goodbye, and closes the endpoints (forcing those
  // with user transfers in flight, whose buffers UCX must give back now).
  // `goodbye`: the reason the peers read.
  void close_down(const std::string& why, bool aborting, const std::string& goodbye);
  void start(TransferSpec spec);
  bool has_pending_user_transfer(int peer) const;
  bool has_pending_user_send() const;
  // Lets the user's pending sends finish before the goodbye (see Departure above).
  void drain_sends();
  // Takes every message still waiting unmatched (heartbeats and goodbyes that came after their
  // receives stopped being posted, data nobody received), so destroying the workers finds none:
  // UCX would print a warning for each.
  void discard_unexpected();
  // Hands back to UCX every request it still holds, once shutdown stops waiting for them.
  void release_abandoned_requests();
  std::exception_ptr peer_lost_error(const Transfer& transfer, const std::string& cause) const;
  std::exception_ptr size_mismatch_error(const Piece& piece, ucs_status_t status,
                                         size_t received) const;
  EndpointSlot& endpoint(int peer, int lane);
  ucp_worker_h worker(int lane) const { return workers_[static_cast<size_t>(lane)].get(); }

  const TransportOptions options_;
  const int rank_;
  const int size_;
  core::PeerTable& peers_;
  std::shared_ptr<spdlog::logger> logger_;
  DataAuth auth_;
  // The sockets that existed before the workers: those that appear later are UCX's connections.
  SocketCensus sockets_before_workers_;

  // Destroyed in reverse order: workers before the context.
  ContextPtr context_;
  std::vector<WorkerPtr> workers_;
  FileDescriptor epoll_;

  std::vector<EndpointSlot> endpoints_;  // [peer * lanes + lane]; never resized
  std::vector<bool> lost_;
  std::vector<bool> departed_;  // lost by an orderly goodbye (also set in lost_)
  core::LaneSet<Transfer> transfers_;
  core::AnySourceReceives any_source_{"ucx"};
  std::vector<Completion> completions_;
  std::vector<EndpointError> endpoint_errors_;
  std::vector<LostPeer> unreported_losses_;
  std::vector<ControlArrival> control_arrivals_;
  // ucp_ep_close_nbx requests not yet called back. A worker must not be destroyed while one is
  // unreleased (UCX asserts), so shutdown releases whatever is left when it gives up waiting.
  std::unordered_set<void*> closing_endpoints_;
  uint64_t next_internal_id_ = uint64_t{1} << 63;
  bool aborted_ = false;
  bool stopping_ = false;
  bool draining_ = false;  // shutdown waits for the user's sends; losses are no longer reported
  bool shut_down_ = false;
  bool connected_ = false;
  std::vector<LinkRung> rungs_;  // set by connect()

  // Liveness state.
  core::PeerLiveness liveness_;
  core::Departures departures_;
  std::vector<std::vector<uint8_t>> control_in_;  // [peer * lanes + lane]
  std::vector<uint8_t> heartbeat_out_;
  std::vector<uint8_t> goodbye_out_;

  // Connection setup only: the ladder's state per peer (empty afterwards).
  std::vector<PeerDial> dials_;
  // The hello messages of connect(); they live as long as UCX may still write them.
  std::vector<std::vector<uint8_t>> hello_out_;  // [peer * lanes + lane]
  std::vector<std::vector<uint8_t>> hello_in_;   // [peer * lanes + lane]
};

}  // namespace torchwan::transport::ucx
