// Losing a peer, aborting, and leaving the group when the transport is destroyed.
#include <fmt/format.h>

#include <algorithm>

#include "transport/zmq/zmq_engine.h"
#include "transport/zmq/zmq_wire.h"

namespace torchwan::transport::zmq_detail {

namespace {
using Clock = std::chrono::steady_clock;
using namespace std::chrono_literals;
}  // namespace

void Engine::lose_peer(int peer, ErrorKind kind, const std::string& cause, bool departed) {
  if (lost_[static_cast<size_t>(peer)]) return;
  lost_[static_cast<size_t>(peer)] = 1;
  const std::string message = who() + ": lost rank " + std::to_string(peer) + ": " + cause;
  const core::Failure failure{kind, message, peer};
  const auto error = failure.error();
  // Departed first: a user thread that sees the loss must also see that receives may go on.
  if (departed) peers_.depart(peer);
  peers_.lose(peer, failure);
  if (!bootstrapped_ && bootstrap_failure_.empty()) bootstrap_failure_ = message;

  // Fail its sends: what is still queued is dropped; what ZMQ holds is released when its
  // sockets close below, and each send reports its failure once that happened.
  std::vector<uint64_t> sends;
  send_ops_.for_each([&](SendOp& op) {
    if (op.peer() != peer) return;
    op.fail(error);
    sends.push_back(op.id());
  });
  for (int lane = 0; lane < options_.lanes; ++lane) {
    SendLane& link = send_lane(peer, lane);
    if (departed && link.relayed) {
      // The acknowledgement of its last goodbye still has to go through the relay.
      std::erase_if(link.queue, [](const OutgoingFrame& frame) { return frame.op != nullptr; });
      continue;
    }
    link.queue.clear();
    link.relay_out = {};
    link.relayed = false;
    link.routed = false;
    // A reverse link's DEALER just queued the acknowledgement of the peer's last goodbye, which
    // closing now (linger 0) would drop; it closes with the transport.
    if (departed && link.carrier == Carrier::kOurDealer) continue;
    link.dealer.close();
  }
  for (ReceiveLane& receive : receive_lanes_) {
    std::erase_if(receive.peer_by_fd, [&](const auto& entry) { return entry.second == peer; });
  }
  if (relay_) relay_->forget(peer);
  const size_t recvs = departed ? inbound_.depart(peer, error) : inbound_.fail_peer(peer, error);
  for (uint64_t id : sends) send_ops_.settle(id);

  // The constructor throws bootstrap_failure_; a transport being destroyed calls nobody back.
  if (!bootstrapped_ || stopping_) return;
  if (sends.empty() && recvs == 0) {
    log_->info("{} (no request was pending)", message);
  } else {
    log_->warn("{} ({} sends and {} receives failed)", message, sends.size(), recvs);
  }
  peers_.report_lost(peer, message);
}

void Engine::fail_everything(const core::Failure& failure) {
  peers_.abort(failure);
  const auto error = failure.error();
  send_ops_.for_each([&](SendOp& op) { op.fail(error); });
  // Every queued piece belongs to a send that did not complete (a send completes only after
  // its last piece left the queue), and dropping it releases its buffer if it was zero-copy.
  for (SendLane& link : send_lanes_) link.queue.clear();
  inbound_.fail_all(error);
  send_ops_.settle_all();
}

void Engine::close_sockets() {
  // Closing makes ZMQ drop, and so release, every piece it still holds.
  for (SendLane& link : send_lanes_) {
    link.queue.clear();
    link.relay_out = {};
    link.routed = false;
    link.relayed = false;
    link.dealer.close();
  }
  relay_.reset();
  for (ReceiveLane& receive : receive_lanes_) {
    receive.router.close();
  }
}

void Engine::shut_down(const core::Failure& failure) {
  if (shut_down_) return;
  shut_down_ = true;
  fail_everything(failure);
  close_sockets();
}

void Engine::say_goodbye() {
  const core::Failure failure{ErrorKind::kAborted,
                              who() + " was destroyed with this request pending"};
  const auto error = failure.error();
  if (shut_down_) return;  // aborted before: nothing pending, no connection left
  // New requests are refused from now on, and receives cannot complete once the transport is
  // gone. Sends go on: the goodbyes queue behind them, so they leave first.
  peers_.abort(failure);
  inbound_.fail_all(error);
  leaving_ = true;
  // A peer that is gone (left, or lost) gets no goodbye.
  auto owed_goodbye = [&](const SendLane& link) {
    return link.open() && !lost_[static_cast<size_t>(link.peer)];
  };
  for (SendLane& link : send_lanes_) {
    if (!owed_goodbye(link)) continue;
    link.queue.push_back(control_frame(core::Goodbye{core::Departure::kShutdown, ""}));
  }
  // Pending sends get the peer timeout to drain; without them a silent peer is not worth a long
  // wait: it will see the connections close.
  const auto patience = send_ops_.empty()
                            ? std::min<std::chrono::milliseconds>(options_.peer_timeout, 2s)
                            : options_.peer_timeout;
  const auto deadline = Clock::now() + patience;
  auto unacknowledged = [&] {
    return std::any_of(send_lanes_.begin(), send_lanes_.end(),
                       [&](const SendLane& link) { return owed_goodbye(link) && !link.bye_acked; });
  };
  while (unacknowledged()) {
    const auto left =
        std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now());
    if (left.count() <= 0) {
      std::string silent;
      for (const SendLane& link : send_lanes_) {
        if (!owed_goodbye(link) || link.bye_acked) continue;
        silent += fmt::format(" {}/{}", link.peer, link.lane);
      }
      log_->info("{}: no goodbye acknowledgement from (rank/lane){}; closing anyway", who(),
                 silent);
      break;
    }
    try {
      // The core's mailbox is closed now, so only this loop consumes the wakeup.
      wakeup_.clear();
      poll_once(std::min(left, std::chrono::milliseconds(100)) + std::chrono::milliseconds(1));
    } catch (const std::exception& failure) {
      log_->warn("{}: error while saying goodbye: {}", who(), failure.what());
      break;
    }
  }
  fail_everything(failure);  // the sends that did not leave in time
  shut_down_ = true;
  close_sockets();
}

}  // namespace torchwan::transport::zmq_detail
