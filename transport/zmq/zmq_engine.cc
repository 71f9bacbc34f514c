#include "transport/zmq/zmq_engine.h"

#include <algorithm>
#include <cerrno>
#include <utility>

namespace torchwan::transport::zmq_detail {

namespace {
using Clock = std::chrono::steady_clock;
}  // namespace

Engine::Engine(core::LinkSetup& setup)
    : options_(setup.options),
      rank_(setup.rank),
      size_(setup.size),
      log_(layer_logger("transport")),
      tuning_(plan_socket_tuning(options_, read_kernel_net_limits())),
      auth_(options_, rank_, size_, who(rank_)),
      peers_(setup.peers),
      wakeup_(setup.wakeup),
      relay_liveness_(size_, options_.peer_timeout),
      inbound_(who()),
      hello_seen_(static_cast<size_t>(size_ * options_.lanes), 0),
      departures_(size_, options_.lanes),
      refusals_(static_cast<size_t>(size_ * options_.lanes)),
      lost_(static_cast<size_t>(size_), 0) {
  Store& store = setup.store;
  const auto deadline = setup.deadline;
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
        3 * (size_ + 2) * std::max<int>(options_.lanes + 1, static_cast<int>(kMaxProbedHosts)) +
            16);
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
  // During connection setup a peer may be blocked reading another peer's records, silent for as
  // long as connect_timeout allows: a relayed peer's silence counts from the moment the group
  // formed.
  relay_liveness_.start(Clock::now());
  log_->debug("{}: connected to {} peers over {} lanes", who(), size_ - 1, options_.lanes);
}

std::string Engine::who(int rank) { return "zmq transport rank " + std::to_string(rank); }

// ---------------------------------------------------------------------------------------------
// Progress loop

bool Engine::progress_once() {
  // The commands the core just ran may have queued frames on lanes that no POLLOUT watches (those
  // through our ROUTER or a relay): they leave now, not after the next event.
  flush_all();
  return poll_once(std::chrono::milliseconds(0));
}

void Engine::sleep(const std::vector<int>& extra_fds, std::chrono::milliseconds timeout) {
  poll_once(timeout.count() < 0 ? std::chrono::milliseconds(-1) : timeout, extra_fds);
}

void Engine::leave() {
  stopping_ = true;
  say_goodbye();
  // zmq_ctx_term returns once ZMQ let go of every message, which has run the last release
  // callbacks; no ZMQ thread can touch a send buffer after it.
  context_.close();
  handle_releases();
  send_ops_.for_each([](SendOp& op) { op.release_all(); });
  send_ops_.settle_all();
}

bool Engine::poll_once(std::chrono::milliseconds timeout, const std::vector<int>& extra_fds) {
  poll_items_.clear();
  poll_targets_.clear();
  auto add = [&](void* socket, int fd, short events, PollTarget target, size_t index) {
    poll_items_.push_back(zmq_pollitem_t{socket, fd, events, 0});
    poll_targets_.emplace_back(target, index);
  };
  add(nullptr, wakeup_.fd(), ZMQ_POLLIN, PollTarget::kWakeup, 0);
  for (int fd : extra_fds) add(nullptr, fd, ZMQ_POLLIN, PollTarget::kExtra, 0);
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

  // Releases that came since the core cleared the wakeup: taken now, or the wakeup stays signalled
  // and the poll below returns at once.
  handle_releases();
  const int ready = zmq_poll(poll_items_.data(), static_cast<int>(poll_items_.size()),
                             static_cast<long>(timeout.count()));
  if (ready < 0 && zmq_errno() != EINTR) throw ::zmq::error_t();
  handle_releases();
  for (size_t i = 0; ready > 0 && i < poll_items_.size(); ++i) {
    if (poll_items_[i].revents == 0) continue;
    const auto [target, index] = poll_targets_[i];
    // Handling an earlier item may have closed this one's socket (a lost peer).
    switch (target) {
      case PollTarget::kWakeup:
      case PollTarget::kExtra:
        break;  // their owners take what they signal
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
  return ready > 0;
}

void Engine::start_send(core::PostedSend send) {
  const uint64_t index = next_send_index_[static_cast<uint64_t>(send.peer) << 48 | send.tag]++;
  SendOp& op =
      send_ops_.add(std::make_unique<SendOp>(send.id, releases_, std::move(send.request), send.peer,
                                             send.tag, send.data, send.length, index, options_));
  for (const WirePiece& piece : op.plan()) {
    OutgoingFrame frame;
    frame.op = &op;
    frame.header.type = MessageType::kData;
    frame.header.tag = send.tag;
    frame.header.index = index;
    frame.header.total_length = send.length;
    frame.header.offset = piece.offset;
    frame.header.length = piece.length;
    send_lane(send.peer, piece.lane).queue.push_back(std::move(frame));
  }
}

void Engine::start_receive(core::PostedReceive receive) {
  if (receive.peer == kAnySource) {
    inbound_.post_any(std::move(receive));
  } else {
    inbound_.post(std::move(receive));
  }
}

void Engine::cancel(uint64_t id) {
  if (SendOp* op = send_ops_.find(id)) {
    cancel_send(*op);
  } else {
    inbound_.cancel(id);
  }
}

void Engine::abort(const core::Failure& failure, const std::string&) { shut_down(failure); }

void Engine::handle_releases() {
  for (uint64_t id : releases_.take_all()) {
    SendOp* op = send_ops_.find(id);
    if (op == nullptr) continue;
    op->release();
    send_ops_.settle(id);
  }
}

}  // namespace torchwan::transport::zmq_detail
