#include "transport/ucx/ucx_engine.h"

#include <poll.h>
#include <sys/epoll.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <cstring>

#include "base/log.h"
#include "transport/errors.h"
#include "transport/ucx/ucx_config.h"
#include "transport/ucx/ucx_wire.h"

namespace torchwan::transport::ucx {

namespace {

// How long shutdown waits for UCX to hand back buffers and finish closing endpoints. Enough for a
// graceful close over loopback or a LAN; a dead peer's endpoints are force-closed and need none.
constexpr std::chrono::milliseconds kShutdownGrace{2000};
// How long a rank that leaves waits for its goodbyes to be written before forcing endpoints.
constexpr std::chrono::milliseconds kGoodbyeGrace{200};
// A worker that keeps producing events is left after this many rounds so the others get a turn.
constexpr int kMaxProgressRoundsPerWorker = 16;

}  // namespace

Engine::Engine(const TransportOptions& options, int rank, int size, core::PeerTable& peers)
    : options_(options),
      rank_(rank),
      size_(size),
      peers_(peers),
      logger_(layer_logger("transport")),
      auth_(options, rank, size, "ucx rank " + std::to_string(rank)),
      sockets_before_workers_(SocketCensus::take()),
      epoll_(epoll_create1(EPOLL_CLOEXEC)),
      lost_(static_cast<size_t>(size), false),
      departed_(static_cast<size_t>(size), false),
      liveness_(size, options.peer_timeout),
      departures_(size, options.lanes) {
  if (epoll_.get() < 0) {
    throw TransportError(ErrorKind::kInternal,
                         std::string("ucx: epoll_create1 failed: ") + std::strerror(errno));
  }
  ConfigPtr config = read_ucx_config(options_);

  ucp_params_t params{};
  params.field_mask = UCP_PARAM_FIELD_FEATURES | UCP_PARAM_FIELD_TAG_SENDER_MASK |
                      UCP_PARAM_FIELD_ESTIMATED_NUM_EPS | UCP_PARAM_FIELD_NAME;
  params.features = UCP_FEATURE_TAG | UCP_FEATURE_WAKEUP;
  params.tag_sender_mask = kSourceTagMask;
  params.estimated_num_eps = static_cast<size_t>(size);
  params.name = "torchwan";
  ucp_context_h context = nullptr;
  check_ucs(ucp_init(&params, config.get(), &context), "ucp_init");
  context_.reset(context);

  for (int lane = 0; lane < options_.lanes; ++lane) {
    const std::string name = "torchwan-r" + std::to_string(rank) + "-lane" + std::to_string(lane);
    ucp_worker_params_t worker_params{};
    worker_params.field_mask = UCP_WORKER_PARAM_FIELD_THREAD_MODE | UCP_WORKER_PARAM_FIELD_NAME;
    worker_params.thread_mode = UCS_THREAD_MODE_SINGLE;
    worker_params.name = name.c_str();
    ucp_worker_h worker = nullptr;
    check_ucs(ucp_worker_create(context_.get(), &worker_params, &worker), "ucp_worker_create");
    workers_.emplace_back(worker);

    int event_fd = -1;
    check_ucs(ucp_worker_get_efd(worker, &event_fd), "ucp_worker_get_efd");
    watch_fd(event_fd);
  }

  endpoints_.reserve(static_cast<size_t>(size) * static_cast<size_t>(options_.lanes));
  for (int peer = 0; peer < size; ++peer) {
    for (int lane = 0; lane < options_.lanes; ++lane) endpoints_.push_back({this, peer, lane});
  }
}

Engine::~Engine() { shutdown(); }

void Engine::watch_fd(int fd) {
  epoll_event event{};
  event.events = EPOLLIN;
  event.data.fd = fd;
  if (epoll_ctl(epoll_.get(), EPOLL_CTL_ADD, fd, &event) != 0) {
    throw TransportError(ErrorKind::kInternal,
                         std::string("ucx: epoll_ctl failed: ") + std::strerror(errno));
  }
}

Engine::EndpointSlot& Engine::endpoint(int peer, int lane) {
  return endpoints_[static_cast<size_t>(peer) * static_cast<size_t>(options_.lanes) +
                    static_cast<size_t>(lane)];
}

// ---------------------------------------------------------------------------------------------
// Commands from user threads

void Engine::start_send(core::PostedSend send) {
  // A transfer holds one pointer type for both directions; a send's buffer is only read.
  start({send.id, std::move(send.request), /*is_send=*/true, send.peer, send.tag,
         const_cast<uint8_t*>(send.data), send.length});
}

void Engine::start_receive(core::PostedReceive receive) {
  start({receive.id, std::move(receive.request), /*is_send=*/false, receive.peer, receive.tag,
         receive.data, receive.length});
}

void Engine::start(TransferSpec spec) {
  // The core started this only after the peer table refused nothing: the transport is neither
  // aborted nor leaving (both mark the table first).
  if (spec.peer == kAnySource) {
    any_source_.add(
        {std::move(spec.request), spec.id, spec.peer, spec.tag, spec.data, spec.length});
    match_any_source();
    return;
  }
  start_exact(std::move(spec));
}

void Engine::start_exact(TransferSpec spec) {
  if (!spec.is_send && departed_[static_cast<size_t>(spec.peer)]) {
    start_receive_from_departed(std::move(spec));
    return;
  }
  if (lost_[static_cast<size_t>(spec.peer)]) {
    const auto lost = peers_.lost(spec.peer);
    const std::string cause = lost ? lost->message : "connection lost";
    spec.request->fail(std::make_exception_ptr(TransportError(
        ErrorKind::kPeerLost,
        "ucx: rank " + std::to_string(spec.peer) + " is lost (" + cause + "); " +
            core::describe_message(spec.is_send, spec.peer, spec.tag, spec.length) + " failed",
        spec.peer)));
    return;
  }
  const ucp_tag_t wire_tag = data_wire_tag(spec.is_send ? rank_ : spec.peer, spec.tag);
  launch(user_transfer(spec), spec.data, wire_tag);
}

std::unique_ptr<Engine::Transfer> Engine::user_transfer(TransferSpec& spec) const {
  return std::make_unique<Transfer>(spec.id, std::move(spec.request), spec.is_send, spec.peer,
                                    spec.tag, spec.length, options_);
}

std::optional<int> Engine::claimable_sender(const core::PostedReceive& receive) {
  const int lane = plan_pieces(options_, receive.tag, receive.length).front().lane;
  ucp_tag_recv_info_t info{};
  // Without removing: the exact receive started next takes the message from the queue.
  const ucp_tag_message_h message =
      ucp_tag_probe_nb(worker(lane), data_wire_tag(0, receive.tag), ~kSourceTagMask, 0, &info);
  const auto source = static_cast<int>(info.sender_tag >> 48);
  if (message == nullptr || source >= size_ || source == rank_) return std::nullopt;
  return source;
}

bool Engine::match_any_source() {
  return any_source_.match(
      std::nullopt,
      [this](const core::PostedReceive& receive) { return claimable_sender(receive); },
      [this](core::PostedReceive receive) {
        start_exact({receive.id, std::move(receive.request), /*is_send=*/false, receive.peer,
                     receive.tag, receive.data, receive.length});
      });
}

void Engine::fail_pending_any_source(ErrorKind kind, const std::string& why) {
  any_source_.fail_all(std::make_exception_ptr(
      TransportError(kind, "ucx: receive from any rank failed: " + why, kAnySource)));
}

void Engine::cancel(uint64_t id) {
  if (any_source_.cancel(id)) return;
  Transfer* transfer = transfers_.find(id);
  if (transfer == nullptr) return;  // already finished
  if (transfer->is_send()) {
    // UCX 1.13 cannot take back a send it holds; it ends when the peer receives it, the peer is
    // lost, or the transport aborts (which closes the endpoints).
    logger_->debug("ucx: cannot cancel {}; it stays pending", transfer->describe());
    return;
  }
  record_failure(*transfer,
                 std::make_exception_ptr(TransportError(
                     ErrorKind::kCanceled,
                     "ucx: " + transfer->describe() + " canceled by its owner", transfer->peer())),
                 /*fail_request_now=*/false);
}

void Engine::abort(const core::Failure& failure, const std::string& reason) {
  if (aborted_ || stopping_) return;
  aborted_ = true;
  peers_.abort(failure);
  close_down("transport aborted: " + failure.message, /*aborting=*/true, reason);
  settle();
}

void Engine::close_down(const std::string& why, bool aborting, const std::string& goodbye) {
  fail_pending_any_source(ErrorKind::kAborted, why);
  // Decided before the transfers fail: a failed transfer stays registered until UCX lets go.
  std::vector<bool> force(static_cast<size_t>(size_));
  for (int peer = 0; peer < size_; ++peer) {
    force[static_cast<size_t>(peer)] = !connected_ || has_pending_user_transfer(peer);
  }
  transfers_.for_each([&](Transfer& transfer) {
    record_failure(transfer,
                   std::make_exception_ptr(TransportError(
                       ErrorKind::kAborted, "ucx: " + transfer.describe() + " failed: " + why,
                       transfer.peer())),
                   /*fail_request_now=*/true);
  });
  if (connected_) {
    std::vector<std::shared_ptr<Request>> goodbyes = say_goodbye(aborting, goodbye);
    // An endpoint about to be forced drops what it has not written yet; give the goodbyes a
    // moment to leave so the peers learn why instead of noticing a broken connection.
    const auto deadline = Clock::now() + kGoodbyeGrace;
    auto all_sent = [&] {
      return std::all_of(goodbyes.begin(), goodbyes.end(),
                         [](const auto& goodbye) { return goodbye->done(); });
    };
    while (std::find(force.begin(), force.end(), true) != force.end() && !all_sent() &&
           Clock::now() < deadline) {
      if (!progress()) wait_for_event(std::chrono::milliseconds(1));
    }
  }
  // A graceful close delivers the goodbye and what was already sent. Endpoints with user transfers
  // in flight are forced: only that makes UCX release the buffers now and stop writing into them.
  for (int peer = 0; peer < size_; ++peer) close_endpoints(peer, force[static_cast<size_t>(peer)]);
}

// ---------------------------------------------------------------------------------------------
// Progress

bool Engine::progress() {
  bool progressed = false;
  for (const WorkerPtr& worker : workers_) {
    for (int round = 0; round < kMaxProgressRoundsPerWorker; ++round) {
      if (ucp_worker_progress(worker.get()) == 0) break;
      progressed = true;
    }
  }
  check_liveness();
  const bool settled = !completions_.empty() || !endpoint_errors_.empty();
  settle();
  // Every round, before the thread may sleep: a message that UCX queued as unexpected during this
  // round is found here.
  const bool matched = !any_source_.empty() && match_any_source();
  return progressed || settled || matched;
}

bool Engine::prepare_to_sleep() {
  for (const WorkerPtr& worker : workers_) {
    const ucs_status_t status = ucp_worker_arm(worker.get());
    if (status == UCS_ERR_BUSY) return false;  // events arrived since the last progress
    if (status != UCS_OK) {
      logger_->error("ucx: ucp_worker_arm failed: {}", ucs_status_string(status));
      return false;
    }
  }
  return true;
}

void Engine::sleep(const std::vector<int>& extra_fds, std::chrono::milliseconds timeout) {
  const int wait_ms = static_cast<int>(shorter_timeout(timeout, kLivenessTick).count());
  if (extra_fds.empty()) {
    epoll_event events[8];
    const int ready = epoll_wait(epoll_.get(), events, 8, wait_ms);
    if (ready < 0 && errno != EINTR) {
      logger_->error("ucx: epoll_wait failed: {}", std::strerror(errno));
    }
    return;
  }
  // The epoll descriptor is readable while a descriptor it watches is: one poll covers both.
  std::vector<pollfd> items;
  items.reserve(extra_fds.size() + 1);
  items.push_back(pollfd{epoll_.get(), POLLIN, 0});
  for (int fd : extra_fds) items.push_back(pollfd{fd, POLLIN, 0});
  if (::poll(items.data(), items.size(), wait_ms) < 0 && errno != EINTR) {
    logger_->error("ucx: poll failed: {}", std::strerror(errno));
  }
}

void Engine::wait_for_event(std::chrono::milliseconds timeout) {
  if (prepare_to_sleep()) sleep({}, timeout);
}

// ---------------------------------------------------------------------------------------------
// Transfers

Engine::Transfer& Engine::launch(std::unique_ptr<Transfer> owned, uint8_t* data, ucp_tag_t wire_tag,
                                 bool internal) {
  Transfer& transfer = transfers_.add(std::move(owned));
  transfer.internal = internal;
  transfer.data = data;
  transfer.wire_tag = wire_tag;
  transfer.pieces.reserve(transfer.plan().size());
  for (const WirePiece& piece : transfer.plan()) {
    transfer.pieces.push_back({this, &transfer, piece.lane, piece.offset, piece.length});
  }
  // Held from the start: a piece that completes at once is only settled after the loop.
  for (size_t i = 0; i < transfer.pieces.size(); ++i) transfer.hold();
  for (Piece& piece : transfer.pieces) post(piece);
  return transfer;
}

void Engine::launch_internal(std::shared_ptr<Request> request, bool is_send, int peer, int lane,
                             std::vector<uint8_t>& buffer, ucp_tag_t wire_tag) {
  std::vector<WirePiece> plan = {{lane, 0, buffer.size()}};
  launch(std::make_unique<Transfer>(next_internal_id_++, std::move(request), is_send, peer, 0,
                                    buffer.size(), std::move(plan)),
         buffer.data(), wire_tag, /*internal=*/true);
}

void Engine::post(Piece& piece) {
  Transfer& transfer = *piece.transfer;
  ucp_request_param_t param{};
  param.op_attr_mask =
      UCP_OP_ATTR_FIELD_CALLBACK | UCP_OP_ATTR_FIELD_USER_DATA | UCP_OP_ATTR_FIELD_MEMORY_TYPE;
  param.user_data = &piece;
  param.memory_type = UCS_MEMORY_TYPE_HOST;  // no CUDA in this UCX; skips the memory-type lookup
  // Zero copy: UCX reads from and writes into the caller's buffer.
  uint8_t* buffer = transfer.data + piece.offset;

  ucs_status_ptr_t result = nullptr;
  size_t received = piece.length;
  if (transfer.is_send()) {
    ucp_ep_h ep = endpoint(transfer.peer(), piece.lane).ep;
    if (ep == nullptr) {
      piece.released = true;
      completions_.push_back({&piece, UCS_ERR_NOT_CONNECTED, 0});
      return;
    }
    param.cb.send = &Engine::on_send_done;
    result = ucp_tag_send_nbx(ep, buffer, piece.length, transfer.wire_tag, &param);
  } else {
    // UCX 1.13 does not report the received length of a receive that completes at once, so a
    // receive always completes through its callback (which then runs inside this call).
    param.op_attr_mask |= UCP_OP_ATTR_FLAG_NO_IMM_CMPL;
    param.cb.recv = &Engine::on_recv_done;
    result = ucp_tag_recv_nbx(worker(piece.lane), buffer, piece.length, transfer.wire_tag,
                              kFullTagMask, &param);
    received = 0;
  }
  if (UCS_PTR_IS_PTR(result)) {
    if (!piece.released) piece.ucx_request = result;
    return;
  }
  // Completed (or failed) at once: UCX will not call back.
  piece.released = true;
  completions_.push_back({&piece, UCS_PTR_STATUS(result), received});
}

void Engine::on_send_done(void* request, ucs_status_t status, void* user_data) {
  auto* piece = static_cast<Piece*>(user_data);
  piece->released = true;
  piece->ucx_request = nullptr;
  piece->engine->completions_.push_back({piece, status, piece->length});
  ucp_request_free(request);
}

void Engine::on_recv_done(void* request, ucs_status_t status, const ucp_tag_recv_info_t* info,
                          void* user_data) {
  auto* piece = static_cast<Piece*>(user_data);
  piece->released = true;
  piece->ucx_request = nullptr;
  const size_t received = (info != nullptr) ? info->length : 0;
  piece->engine->completions_.push_back({piece, status, received});
  ucp_request_free(request);
}

void Engine::on_endpoint_error(void* arg, ucp_ep_h, ucs_status_t status) {
  auto* slot = static_cast<EndpointSlot*>(arg);
  slot->engine->endpoint_errors_.push_back({slot->peer, slot->lane, status});
}

void Engine::on_close_done(void* request, ucs_status_t, void* user_data) {
  static_cast<Engine*>(user_data)->closing_endpoints_.erase(request);
  ucp_request_free(request);
}

void Engine::settle() {
  while (!completions_.empty() || !control_arrivals_.empty() || !endpoint_errors_.empty()) {
    // Every completion and control message first, until none is left: a goodbye that arrived
    // before its lane closed must be seen before the error the close raises. Handling a control
    // message re-posts its receive, which completes at once when the next one (the goodbye behind
    // a heartbeat) already waits in UCX's unexpected queue; so one pass is not enough.
    while (!completions_.empty() || !control_arrivals_.empty()) {
      std::vector<Completion> completions;
      completions.swap(completions_);
      for (const Completion& completion : completions) finish_piece(completion);
      std::vector<ControlArrival> arrivals;
      arrivals.swap(control_arrivals_);
      for (const ControlArrival& arrival : arrivals) handle_control(arrival);
    }
    std::vector<EndpointError> errors;
    errors.swap(endpoint_errors_);
    for (const EndpointError& error : errors) {
      if (absorb_dial_error(error.peer, error.lane, error.status)) continue;
      if (departures_.lane_said_goodbye(error.peer, error.lane)) {
        // The peer said goodbye on this lane and closed it; its other lanes may still carry data.
        close_endpoint(error.peer, error.lane, /*force=*/true);
        continue;
      }
      lose_peer(error.peer, std::string("endpoint error on lane ") + std::to_string(error.lane) +
                                ": " + ucs_status_string(error.status));
    }
  }
  // Handlers run last, when no bookkeeping is half done; they may call back into the transport.
  std::vector<LostPeer> losses;
  losses.swap(unreported_losses_);
  for (const LostPeer& loss : losses) {
    peers_.report_lost(loss.peer, loss.cause);
  }
}

void Engine::finish_piece(const Completion& completion) {
  Piece& piece = *completion.piece;
  Transfer& transfer = *piece.transfer;
  transfer.release();

  std::exception_ptr error;
  if (completion.status == UCS_OK && !transfer.is_send()) {
    liveness_.heard(transfer.peer(), Clock::now());
  }
  if (completion.status == UCS_OK) {
    if (!transfer.is_send() && completion.received != piece.length) {
      error = size_mismatch_error(piece, completion.status, completion.received);
    }
  } else if (completion.status == UCS_ERR_MESSAGE_TRUNCATED) {
    error = size_mismatch_error(piece, completion.status, completion.received);
  } else if (completion.status == UCS_ERR_CANCELED) {
    if (!transfer.failed()) {
      error = std::make_exception_ptr(
          TransportError(ErrorKind::kCanceled,
                         "ucx: " + transfer.describe() + " was canceled by UCX", transfer.peer()));
    }
  } else {
    // Any other failure of an operation with a peer means the connection to it is unusable.
    const std::string cause = std::string(ucs_status_string(completion.status)) + " on lane " +
                              std::to_string(piece.lane);
    error = peer_lost_error(transfer, cause);
    endpoint_errors_.push_back({transfer.peer(), piece.lane, completion.status});
  }

  if (error) {
    record_failure(transfer, error, /*fail_request_now=*/false);
  } else {
    transfer.piece_done();
  }
  transfers_.settle(transfer.id());  // may destroy the transfer
}

void Engine::record_failure(Transfer& transfer, std::exception_ptr error, bool fail_request_now) {
  // UCX is told to cancel the pieces before the owner hears of the failure.
  if (transfer.fail(std::move(error))) cancel_pieces(transfer);
  if (fail_request_now) transfer.fail_now(transfer.error());
}

void Engine::cancel_pieces(Transfer& transfer) {
  // Only receives can be canceled; UCX releases sends when their endpoint closes.
  if (transfer.is_send()) return;
  for (Piece& piece : transfer.pieces) {
    // A receive already matched to an arriving message is not canceled; it completes normally.
    if (!piece.released && piece.ucx_request != nullptr) {
      ucp_request_cancel(worker(piece.lane), piece.ucx_request);
    }
  }
}

void Engine::lose_peer(int peer, const std::string& cause, bool quiet) {
  if (lost_[static_cast<size_t>(peer)]) return;
  lost_[static_cast<size_t>(peer)] = true;
  peers_.lose(peer, {ErrorKind::kPeerLost, cause, peer});
  if (quiet || stopping_) {
    logger_->debug("ucx rank {}: rank {} is gone: {}", rank_, peer, cause);
  } else {
    logger_->warn("ucx rank {}: lost rank {}: {}", rank_, peer, cause);
  }
  transfers_.for_each([&](Transfer& transfer) {
    if (transfer.peer() == peer) {
      record_failure(transfer, peer_lost_error(transfer, cause), /*fail_request_now=*/true);
    }
  });
  close_endpoints(peer, /*force=*/true);
  // A transport being destroyed calls nobody back.
  if (!stopping_ && !draining_) unreported_losses_.push_back({peer, cause});
}

void Engine::close_endpoints(int peer, bool force) {
  for (int lane = 0; lane < options_.lanes; ++lane) close_endpoint(peer, lane, force);
}

void Engine::close_endpoint(int peer, int lane, bool force) {
  EndpointSlot& slot = endpoint(peer, lane);
  if (slot.ep == nullptr) return;
  ucp_request_param_t param{};
  param.op_attr_mask =
      UCP_OP_ATTR_FIELD_FLAGS | UCP_OP_ATTR_FIELD_CALLBACK | UCP_OP_ATTR_FIELD_USER_DATA;
  param.flags = force ? UCP_EP_CLOSE_FLAG_FORCE : 0;
  param.cb.send = &Engine::on_close_done;
  param.user_data = this;
  ucs_status_ptr_t closing = ucp_ep_close_nbx(slot.ep, &param);
  slot.ep = nullptr;
  if (UCS_PTR_IS_PTR(closing)) closing_endpoints_.insert(closing);
}

bool Engine::has_pending_user_transfer(int peer) const {
  return transfers_.any_of(
      [peer](const Transfer& transfer) { return transfer.peer() == peer && !transfer.internal; });
}

std::exception_ptr Engine::peer_lost_error(const Transfer& transfer,
                                           const std::string& cause) const {
  return std::make_exception_ptr(TransportError(
      ErrorKind::kPeerLost,
      "ucx: rank " + std::to_string(rank_) + " lost rank " + std::to_string(transfer.peer()) +
          " (" + cause + "); " + transfer.describe() + " failed",
      transfer.peer()));
}

std::exception_ptr Engine::size_mismatch_error(const Piece& piece, ucs_status_t status,
                                               size_t received) const {
  const Transfer& transfer = *piece.transfer;
  std::string message =
      "ucx: size mismatch receiving from rank " + std::to_string(transfer.peer()) + ", tag " +
      std::to_string(transfer.tag()) + ": expected " + std::to_string(transfer.length()) + " bytes";
  if (transfer.pieces.size() > 1) {
    message += " (a piece of " + std::to_string(piece.length) + " bytes at offset " +
               std::to_string(piece.offset) + " on lane " + std::to_string(piece.lane) + ")";
  }
  message += status == UCS_ERR_MESSAGE_TRUNCATED
                 ? ", received more than " + std::to_string(piece.length) + " bytes"
                 : ", received " + std::to_string(received) + " bytes";
  message += "; sender and receiver disagree on the message length";
  return std::make_exception_ptr(
      TransportError(ErrorKind::kSizeMismatch, message, transfer.peer()));
}

// ---------------------------------------------------------------------------------------------
// Shutdown

bool Engine::has_pending_user_send() const {
  return transfers_.any_of([](const Transfer& transfer) {
    return transfer.is_send() && !transfer.internal && !transfer.failed();
  });
}

void Engine::drain_sends() {
  const std::string why = "the transport was shut down";
  // A receive cannot complete once the transport is gone; its owner learns that now.
  fail_pending_any_source(ErrorKind::kAborted, why);
  transfers_.for_each([&](Transfer& transfer) {
    if (transfer.internal || transfer.is_send()) return;
    record_failure(transfer,
                   std::make_exception_ptr(TransportError(
                       ErrorKind::kAborted, "ucx: " + transfer.describe() + " failed: " + why,
                       transfer.peer())),
                   /*fail_request_now=*/true);
  });
  if (!has_pending_user_send()) return;
  // A rendezvous send completes only once the peer posted its receive; heartbeats go on
  // meanwhile, and a peer that is lost or leaves fails its sends and so ends the wait.
  draining_ = true;
  const auto deadline = Clock::now() + options_.peer_timeout;
  while (has_pending_user_send() && !aborted_ && Clock::now() < deadline) {
    if (!progress()) wait_for_event(std::chrono::milliseconds(10));
  }
  if (has_pending_user_send()) {
    logger_->info("ucx rank {}: leaving with sends the peers did not take within {} ms", rank_,
                  options_.peer_timeout.count());
  }
}

void Engine::discard_unexpected() {
  constexpr auto kWait = std::chrono::milliseconds(100);
  // Big enough for any control message. A longer message is received into it truncated: UCX then
  // reports the truncation without copying anything, and a rendezvous whose endpoint is closed
  // fails without fetching anything.
  std::array<uint8_t, core::kControlBytes> scratch{};
  size_t user_messages = 0;
  for (const WorkerPtr& worker : workers_) {
    while (ucp_worker_progress(worker.get()) != 0) {
    }
    while (true) {
      ucp_tag_recv_info_t info{};
      const ucp_tag_message_h message = ucp_tag_probe_nb(worker.get(), 0, 0, 1, &info);
      if (message == nullptr) break;
      if ((info.sender_tag & kSourceTagMask) != kSourceTagMask) ++user_messages;
      ucp_request_param_t param{};
      ucs_status_ptr_t request = ucp_tag_msg_recv_nbx(
          worker.get(), scratch.data(), std::min(info.length, scratch.size()), message, &param);
      if (!UCS_PTR_IS_PTR(request)) continue;
      const auto deadline = Clock::now() + kWait;
      while (ucp_request_check_status(request) == UCS_INPROGRESS && Clock::now() < deadline) {
        ucp_worker_progress(worker.get());
      }
      if (ucp_request_check_status(request) == UCS_INPROGRESS) {
        ucp_request_cancel(worker.get(), request);
      }
      ucp_request_free(request);
    }
  }
  if (user_messages > 0) {
    logger_->debug("ucx rank {}: {} message pieces that arrived were never received", rank_,
                   user_messages);
  }
}

void Engine::release_abandoned_requests() {
  // Released requests complete inside UCX without calling back, so nothing below is written to
  // after this; destroying the workers then finds no request the user still owns.
  for (void* request : closing_endpoints_) ucp_request_free(request);
  closing_endpoints_.clear();
  transfers_.for_each([](Transfer& transfer) {
    for (Piece& piece : transfer.pieces) {
      if (!piece.released && piece.ucx_request != nullptr) {
        ucp_request_free(piece.ucx_request);
        piece.ucx_request = nullptr;
        piece.released = true;
      }
    }
  });
}

void Engine::shutdown() {
  if (shut_down_) return;
  shut_down_ = true;
  if (!aborted_ && connected_) drain_sends();
  stopping_ = true;
  // After an abort everything already failed and the endpoints are closed.
  if (!aborted_) close_down("the transport was shut down", /*aborting=*/false, "");
  settle();
  const auto deadline = std::chrono::steady_clock::now() + kShutdownGrace;
  while ((!closing_endpoints_.empty() || !transfers_.empty()) &&
         std::chrono::steady_clock::now() < deadline) {
    if (!progress()) wait_for_event(std::chrono::milliseconds(10));
  }
  if (!closing_endpoints_.empty() || !transfers_.empty()) {
    logger_->warn(
        "ucx rank {}: shutdown gave up after {} ms with {} endpoints still closing and {} "
        "transfers still held by UCX",
        rank_, kShutdownGrace.count(), closing_endpoints_.size(), transfers_.size());
    release_abandoned_requests();
  }
  discard_unexpected();
  // Destroyed here, while the bookkeeping that late UCX callbacks write into is still alive.
  workers_.clear();
  context_.reset();
}

}  // namespace torchwan::transport::ucx
