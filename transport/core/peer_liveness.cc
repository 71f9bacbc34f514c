#include "transport/core/peer_liveness.h"

#include <algorithm>

namespace torchwan::transport::core {

namespace {

std::string milliseconds_text(std::chrono::steady_clock::duration duration) {
  return std::to_string(std::chrono::duration_cast<std::chrono::milliseconds>(duration).count()) +
         " ms";
}

}  // namespace

PeerLiveness::PeerLiveness(int size, std::chrono::milliseconds peer_timeout)
    : peer_timeout_(peer_timeout),
      heard_(static_cast<size_t>(size)),
      sent_(static_cast<size_t>(size)) {}

void PeerLiveness::start(Clock::time_point now) {
  std::fill(heard_.begin(), heard_.end(), now);
  // The first heartbeats go out at once: a peer hears of this rank as soon as the group formed.
  std::fill(sent_.begin(), sent_.end(), now - heartbeat_interval());
  last_check_.reset();
}

std::chrono::milliseconds PeerLiveness::heartbeat_interval() const {
  return std::max<std::chrono::milliseconds>(peer_timeout_ / 4, std::chrono::milliseconds(10));
}

void PeerLiveness::restart_if_held_up(Clock::time_point now, Check& check) {
  if (!last_check_ || now - *last_check_ <= peer_timeout_ / 2) return;
  check.held_up = now - *last_check_;
  std::fill(heard_.begin(), heard_.end(), now);
}

std::string PeerLiveness::describe_silence(int peer, Clock::time_point now) const {
  return "nothing arrived from it for " + milliseconds_text(silence(peer, now)) +
         " although it heartbeats every " + milliseconds_text(heartbeat_interval()) +
         " (peer_timeout " + milliseconds_text(peer_timeout_) + ")";
}

}  // namespace torchwan::transport::core
