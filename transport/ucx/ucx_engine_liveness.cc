// Liveness of the UCX engine. UCX reports a peer whose process died (its sockets close), but not
// one that stopped, hung or whose host became unreachable with data in flight (TCP retransmits
// for many minutes), nor one that aborted while its endpoints stay open. So every rank sends a
// small heartbeat to each peer on lane 0 every quarter of the peer timeout, counts anything that
// arrives from a peer as a sign of life, and says goodbye on every lane when it leaves.
#include <algorithm>

#include "transport/core/control_wire.h"
#include "transport/ucx/ucx_engine.h"
#include "transport/ucx/ucx_wire.h"

namespace torchwan::transport::ucx {

void Engine::start_liveness() {
  heartbeat_out_ = core::encode_control(core::Heartbeat{});
  const size_t lanes = static_cast<size_t>(options_.lanes);
  control_in_.assign(static_cast<size_t>(size_) * lanes,
                     std::vector<uint8_t>(core::kControlBytes, 0));
  liveness_.start(Clock::now());
  for (int peer = 0; peer < size_; ++peer) {
    if (peer == rank_) continue;
    // Goodbyes come on every lane (each after that lane's data), heartbeats on lane 0.
    for (int lane = 0; lane < options_.lanes; ++lane) post_control_receive(peer, lane);
  }
}

void Engine::post_control_receive(int peer, int lane) {
  auto& inbox = control_in_[static_cast<size_t>(peer * options_.lanes + lane)];
  // The callback runs inside the engine's bookkeeping, so it only records the arrival.
  auto request =
      std::make_shared<Request>(peer, 0, core::kControlBytes, [this, peer, lane](Request& done) {
        control_arrivals_.push_back({peer, lane, done.ok()});
      });
  launch_internal(std::move(request), /*is_send=*/false, peer, lane, inbox, control_wire_tag(peer));
}

std::shared_ptr<Request> Engine::send_control(int peer, int lane, std::vector<uint8_t>& message) {
  auto request = std::make_shared<Request>(peer, 0, message.size());
  launch_internal(request, /*is_send=*/true, peer, lane, message, control_wire_tag(rank_));
  return request;
}

void Engine::handle_control(const ControlArrival& arrival) {
  const size_t peer = static_cast<size_t>(arrival.peer);
  if (lost_[peer] || aborted_ || stopping_) return;
  if (!arrival.ok) {
    lose_peer(arrival.peer, "it sent a control message this rank could not receive");
    return;
  }
  core::ControlMessage message;
  try {
    message = core::decode_control(
        control_in_[static_cast<size_t>(arrival.peer * options_.lanes + arrival.lane)]);
  } catch (const core::WireError& malformed) {
    lose_peer(arrival.peer, std::string("it sent a ") + malformed.what());
    return;
  }
  const core::ControlVerdict verdict = departures_.on_control(arrival.peer, arrival.lane, message);
  switch (verdict.kind) {
    case core::ControlVerdict::Kind::kAlive:
      // finish_piece already counted it as a sign of life
      post_control_receive(arrival.peer, arrival.lane);
      return;
    case core::ControlVerdict::Kind::kLaneLeft:
      return;
    case core::ControlVerdict::Kind::kDeparted:
      // Each goodbye follows the data of its lane, so nothing the peer sent is still on the way.
      depart_peer(arrival.peer, verdict.cause);
      return;
    case core::ControlVerdict::Kind::kLost:
      lose_peer(arrival.peer, verdict.cause);
      return;
  }
}

void Engine::check_liveness() {
  if (!connected_ || aborted_ || stopping_) return;
  const auto now = Clock::now();
  const core::PeerLiveness::Check check = liveness_.check(
      now, [this](int peer) { return peer != rank_ && !lost_[static_cast<size_t>(peer)]; });
  if (check.held_up) {
    logger_->warn("ucx rank {}: progress thread was held up for {} ms; restarting peer timers",
                  rank_,
                  std::chrono::duration_cast<std::chrono::milliseconds>(*check.held_up).count());
  }
  for (int peer : check.silent) {
    lose_peer(peer, liveness_.describe_silence(peer, now) + ": stopped, hung or unreachable");
  }
  for (int peer : check.heartbeat_due) {
    if (lost_[static_cast<size_t>(peer)] || departures_.departing(peer)) continue;
    // Sent on a fixed period, whatever else goes to the peer: a message UCX holds until the peer
    // posts its receive is no sign of life to that peer.
    send_control(peer, 0, heartbeat_out_);
    liveness_.sent(peer, now);
  }
}

std::vector<std::shared_ptr<Request>> Engine::say_goodbye(bool aborting,
                                                          const std::string& reason) {
  goodbye_out_ = core::encode_control(
      core::Goodbye{aborting ? core::Departure::kAbort : core::Departure::kShutdown, reason});
  std::vector<std::shared_ptr<Request>> sent;
  for (int peer = 0; peer < size_; ++peer) {
    if (peer == rank_ || lost_[static_cast<size_t>(peer)]) continue;
    for (int lane = 0; lane < options_.lanes; ++lane) {
      if (endpoint(peer, lane).ep != nullptr)
        sent.push_back(send_control(peer, lane, goodbye_out_));
    }
  }
  return sent;
}

void Engine::depart_peer(int peer, const std::string& cause) {
  // Recorded before the loss, so a user thread that sees the loss also sees the departure.
  departed_[static_cast<size_t>(peer)] = true;
  peers_.depart(peer);
  // Every lane's goodbye came behind that lane's data, so a receive still waiting now waits for
  // a message that was never sent: it fails, and so do sends to the peer.
  lose_peer(peer, cause, /*quiet=*/true);
}

void Engine::start_receive_from_departed(TransferSpec spec) {
  const int peer = spec.peer;
  const ucp_tag_t wire_tag = data_wire_tag(peer, spec.tag);
  // Completions are settled later, so the transfer is still registered after launch.
  Transfer& transfer = launch(user_transfer(spec), spec.data, wire_tag);
  // A message that arrived before the goodbye waits whole in UCX's unexpected queue, so its
  // pieces match inside launch; a piece that did not will never find data.
  const bool matched = std::all_of(transfer.pieces.begin(), transfer.pieces.end(),
                                   [](const Piece& piece) { return piece.released; });
  if (matched) return;
  const auto lost = peers_.lost(peer);
  const std::string cause = lost ? lost->message : "it left the group";
  record_failure(transfer, peer_lost_error(transfer, cause + "; nothing it sent matches"),
                 /*fail_request_now=*/true);
}

}  // namespace torchwan::transport::ucx
