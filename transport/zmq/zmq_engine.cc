#include "transport/zmq/zmq_engine.h"

#include <pthread.h>
#include <signal.h>

#include <algorithm>
#include <cerrno>
#include <utility>

namespace torchwan::transport::zmq_detail {

namespace {
using Clock = std::chrono::steady_clock;
}  // namespace

Engine::Engine(const TransportOptions& options, Store& store, int rank, int size)
    : options_(options),
      rank_(rank),
      size_(size),
      log_(layer_logger("transport")),
      tuning_(plan_socket_tuning(options, read_kernel_net_limits())),
      auth_(options, rank, size, "zmq transport rank " + std::to_string(rank)),
      inbox_(std::make_shared<Inbox>()),
      peers_(size),
      inbound_(who()),
      hello_seen_(static_cast<size_t>(size * options.lanes), 0),
      departures_(size, options.lanes),
      refusals_(static_cast<size_t>(size * options.lanes)),
      lost_(static_cast<size_t>(size), 0) {
  const auto deadline = Clock::now() + options_.connect_timeout;
  log_->debug("{}: data connections: {}", who(),
              describe_socket_tuning(options_, read_kernel_net_limits(), tuning_));
  try {
    // One I/O thread moves several GB/s; the progress thread and the peers' threads share the
    // remaining cores. Every monitored socket costs three ZMQ sockets (it, the monitor's inproc
    // PAIR and ours); the dial phase's probes are gone before the lanes' DEALERs open. The relay
    // lanes, when some pair needs them, are one more monitored DEALER per lane.
    context_.set(::zmq::ctxopt::io_threads, 1);
    context_.set(
        ::zmq::ctxopt::max_sockets,
        3 * (size + 2) * std::max<int>(options_.lanes + 1, static_cast<int>(kMaxProbedHosts)) + 16);
    context_.set(::zmq::ctxopt::blocky, 0);
    const AddressRecord mine = bind_lanes();
    // The auth record goes first: a peer that found the addresses finds it too.
    auth_.publish(store);
    store.set(address_key(rank_), encode_address_record(mine));
    std::vector<AddressRecord> addresses = read_peer_addresses(store, deadline);
    addresses[static_cast<size_t>(rank_)] = mine;
    auth_.collect(store, deadline);
    const auto reached = dial_candidates(addresses, deadline);
    choose_rungs(store, addresses, reached, deadline);
    open_relay(store, deadline);
    connect_lanes(addresses, reached);
  } catch (const ::zmq::error_t& error) {
    throw TransportError(ErrorKind::kBootstrap,
                         who() + ": ZeroMQ failed during connection setup: " + error.what());
  }
  await_hellos(deadline);
  bootstrapped_ = true;
  relay_watch_from_ = Clock::now();
  log_->debug("{}: connected to {} peers over {} lanes", who(), size_ - 1, options_.lanes);
  // The sockets move to the progress thread here; starting a thread is a full memory barrier.
  progress_thread_ = std::thread([this] { run(); });
}

Engine::~Engine() {
  inbox_->commands.push(StopCommand{});
  if (progress_thread_.joinable()) progress_thread_.join();
}

std::string Engine::who() const { return "zmq transport rank " + std::to_string(rank_); }

// ---------------------------------------------------------------------------------------------
// Entry points for user threads

std::function<void()> Engine::cancel_hook(uint64_t id) {
  return [inbox = std::weak_ptr<Inbox>(inbox_), id] {
    if (auto alive = inbox.lock()) alive->commands.push(CancelCommand{id});
  };
}

std::shared_ptr<Request> Engine::admit(bool is_send, int peer, Tag tag, size_t length,
                                       Request::Callback callback, std::optional<uint64_t>& id) {
  auto request = std::make_shared<Request>(peer, tag, length, std::move(callback));
  if (auto refusal = peers_.refusal(peer, is_send)) {
    request->fail(refusal->error());
    return request;
  }
  id = next_request_id_.fetch_add(1);
  request->set_cancel_hook(cancel_hook(*id));
  return request;
}

std::shared_ptr<Request> Engine::send(int peer, Tag tag, const void* data, size_t length,
                                      Request::Callback callback) {
  std::optional<uint64_t> id;
  auto request = admit(/*is_send=*/true, peer, tag, length, std::move(callback), id);
  if (id) {
    inbox_->commands.push(
        SendCommand{request, *id, peer, tag, static_cast<const uint8_t*>(data), length});
  }
  return request;
}

std::shared_ptr<Request> Engine::recv(int peer, Tag tag, void* data, size_t length,
                                      Request::Callback callback) {
  std::optional<uint64_t> id;
  auto request = admit(/*is_send=*/false, peer, tag, length, std::move(callback), id);
  if (id) {
    inbox_->commands.push(RecvCommand{
        core::PostedReceive{request, *id, peer, tag, static_cast<uint8_t*>(data), length}});
  }
  return request;
}

void Engine::abort(const std::string& reason) {
  core::Failure failure{ErrorKind::kAborted, who() + " was aborted: " + reason};
  if (peers_.abort(failure)) inbox_->commands.push(AbortCommand{std::move(failure), reason});
}

void Engine::set_peer_failure_handler(Transport::PeerFailureHandler handler) {
  peers_.set_failure_handler(std::move(handler));
}

// ---------------------------------------------------------------------------------------------
// Progress loop

void Engine::run() {
  // Signals belong to the application's threads: one landing here would interrupt zmq_poll and
  // ZMQ calls with EINTR (ZMQ's own threads block them the same way).
  sigset_t all;
  sigfillset(&all);
  pthread_sigmask(SIG_BLOCK, &all, nullptr);
  while (!stopping_) {
    try {
      poll_once(std::chrono::milliseconds(-1));
    } catch (const std::exception& error) {
      // Never leave requests hanging: fail them all and keep answering commands until stopped.
      log_->critical("{}: progress thread failed: {}", who(), error.what());
      shut_down({ErrorKind::kInternal, who() + ": progress thread failed: " + error.what()});
    }
  }
  leave();
  // zmq_ctx_term returns once ZMQ let go of every message, which has run the last release
  // callbacks; no ZMQ thread can touch a send buffer after it.
  context_.close();
  handle_releases();
  send_ops_.for_each([](SendOp& op) { op.release_all(); });
  send_ops_.settle_all();
  handle_commands();  // requests posted while stopping fail at once (peers_ says aborted)
}

void Engine::poll_once(std::chrono::milliseconds timeout) {
  poll_items_.clear();
  poll_targets_.clear();
  auto add = [&](void* socket, int fd, short events, PollTarget target, size_t index) {
    poll_items_.push_back(zmq_pollitem_t{socket, fd, events, 0});
    poll_targets_.emplace_back(target, index);
  };
  add(nullptr, inbox_->wakeup.fd(), ZMQ_POLLIN, PollTarget::kWakeup, 0);
  for (size_t i = 0; i < receive_lanes_.size(); ++i) {
    if (!receive_lanes_[i].router) continue;
    add(receive_lanes_[i].router.socket().handle(), 0, ZMQ_POLLIN, PollTarget::kRouter, i);
    add(receive_lanes_[i].router.monitor().handle(), 0, ZMQ_POLLIN, PollTarget::kRouterMonitor, i);
  }
  for (size_t i = 0; i < send_lanes_.size(); ++i) {
    SendLane& link = send_lanes_[i];
    if (!link.dealer) continue;
    add(link.dealer.monitor().handle(), 0, ZMQ_POLLIN, PollTarget::kDealerMonitor, i);
    if (!link.queue.empty())
      add(link.dealer.socket().handle(), 0, ZMQ_POLLOUT, PollTarget::kDealer, i);
    if (link.carrier == Carrier::kOurDealer || (leaving_ && !link.bye_acked)) {
      add(link.dealer.socket().handle(), 0, ZMQ_POLLIN, PollTarget::kDealerInbound, i);
    }
  }

  if (relay_) {
    for (void* handle : relay_->handles()) add(handle, 0, ZMQ_POLLIN, PollTarget::kRelay, 0);
    // Relayed peers have no connection whose drop tells of their loss: heartbeats do.
    const auto beat = relay_heartbeat_interval();
    timeout = timeout.count() < 0 ? beat : std::min(timeout, beat);
  }

  const int ready = zmq_poll(poll_items_.data(), static_cast<int>(poll_items_.size()),
                             static_cast<long>(timeout.count()));
  if (ready < 0 && zmq_errno() != EINTR) throw ::zmq::error_t();

  inbox_->wakeup.clear();
  handle_releases();
  handle_commands();
  for (size_t i = 0; ready > 0 && i < poll_items_.size(); ++i) {
    if (poll_items_[i].revents == 0) continue;
    const auto [target, index] = poll_targets_[i];
    // Handling an earlier item may have closed this one's socket (a lost peer).
    switch (target) {
      case PollTarget::kWakeup:
        break;
      case PollTarget::kRouter:
        if (receive_lanes_[index].router) drain_router(static_cast<int>(index));
        break;
      case PollTarget::kRouterMonitor:
        if (receive_lanes_[index].router) drain_router_monitor(static_cast<int>(index));
        break;
      case PollTarget::kDealerMonitor:
        if (send_lanes_[index].dealer) drain_dealer_monitor(send_lanes_[index]);
        break;
      case PollTarget::kDealerInbound:
        if (send_lanes_[index].dealer) drain_dealer(send_lanes_[index]);
        break;
      case PollTarget::kDealer:
      case PollTarget::kRelay:
        break;  // flush_all and drain_relay below
    }
  }
  if (relay_) {
    // Credit may have come even when no data did: always read, then send what it admits.
    drain_relay();
    keep_relayed_peers_alive();
  }
  flush_all();
}

void Engine::handle_commands() {
  for (Command& command : inbox_->commands.take_all()) {
    std::visit([this](auto& typed) { handle_command(typed); }, command);
  }
}

void Engine::handle_command(SendCommand& command) {
  if (auto refusal = peers_.refusal(command.peer, /*is_send=*/true)) {
    command.request->fail(refusal->error());
    return;
  }
  const uint64_t index =
      next_send_index_[static_cast<uint64_t>(command.peer) << 48 | command.tag]++;
  SendOp& op = send_ops_.add(std::make_unique<SendOp>(
      command.id, inbox_->releases, std::move(command.request), command.peer, command.tag,
      command.data, command.length, index, options_));
  for (const WirePiece& piece : op.plan()) {
    OutgoingFrame frame;
    frame.op = &op;
    frame.header.type = MessageType::kData;
    frame.header.tag = command.tag;
    frame.header.index = index;
    frame.header.total_length = command.length;
    frame.header.offset = piece.offset;
    frame.header.length = piece.length;
    send_lane(command.peer, piece.lane).queue.push_back(std::move(frame));
  }
}

void Engine::handle_command(RecvCommand& command) {
  const bool any_source = command.recv.peer == kAnySource;
  if (auto refusal = peers_.refusal(command.recv.peer, /*is_send=*/false)) {
    command.recv.request->fail(refusal->error());
    return;
  }
  if (any_source) {
    inbound_.post_any(std::move(command.recv));
  } else {
    inbound_.post(std::move(command.recv));
  }
}

void Engine::handle_command(CancelCommand& command) {
  if (SendOp* op = send_ops_.find(command.id)) {
    cancel_send(*op);
  } else {
    inbound_.cancel(command.id);
  }
}

void Engine::handle_command(AbortCommand& command) {
  log_->warn("{} aborted: {}", who(), command.reason);
  shut_down(command.failure);
}

void Engine::handle_command(StopCommand&) { stopping_ = true; }

void Engine::handle_releases() {
  for (uint64_t id : inbox_->releases.take_all()) {
    SendOp* op = send_ops_.find(id);
    if (op == nullptr) continue;
    op->release();
    send_ops_.settle(id);
  }
}

}  // namespace torchwan::transport::zmq_detail
