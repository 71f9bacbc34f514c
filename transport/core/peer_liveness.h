// When each peer was last heard from and last sent to, and what follows from it: the one rule by
// which a link loses a silent peer and keeps a quiet pair alive. A link whose connections do not
// tell it of a stopped, hung or unreachable peer (UCX endpoints with data in flight, pairs joined
// only through a relay) sends a heartbeat to each watched peer that it sent nothing for a
// heartbeat interval (a quarter of the peer timeout), counts anything that arrives as a sign of
// life, and loses a peer silent for longer than the peer timeout.
//
// The watcher's own stalls are not the peers' fault: when checks come further apart than half the
// peer timeout (the process was stopped, or its host overloaded), every timer restarts instead of
// blaming the peers for the silence.
#pragma once

#include <chrono>
#include <optional>
#include <string>
#include <vector>

namespace torchwan::transport::core {

class PeerLiveness {
 public:
  using Clock = std::chrono::steady_clock;

  PeerLiveness(int size, std::chrono::milliseconds peer_timeout);

  // Silence counts from `now` (the group formed): a peer slow to finish connection setup is not
  // silent before it.
  void start(Clock::time_point now);
  // Keeps the latest sign of life: an older one (a link's own record of an earlier arrival) does
  // not move it back.
  void heard(int peer, Clock::time_point when) {
    auto& heard = heard_[static_cast<size_t>(peer)];
    if (when > heard) heard = when;
  }
  // Something left for `peer` that it will read whether or not a receive waits for it.
  void sent(int peer, Clock::time_point now) { sent_[static_cast<size_t>(peer)] = now; }

  struct Check {
    std::vector<int> silent;         // to lose: nothing came for longer than the peer timeout
    std::vector<int> heartbeat_due;  // to send a heartbeat to (and call sent() for)
    // Set when this check restarted the timers because the watcher itself was held up that long.
    std::optional<Clock::duration> held_up;
  };
  // The verdicts at `now` for the peers `watched` says to watch (not this rank, not lost). Checks
  // closer together than kCheckPeriod return nothing.
  template <typename Watched>
  Check check(Clock::time_point now, Watched watched);

  Clock::duration silence(int peer, Clock::time_point now) const {
    return now - heard_[static_cast<size_t>(peer)];
  }
  std::chrono::milliseconds heartbeat_interval() const;
  std::chrono::milliseconds peer_timeout() const { return peer_timeout_; }
  // "nothing arrived from it for 5012 ms although it heartbeats every 1250 ms (peer_timeout
  // 5000 ms)"
  std::string describe_silence(int peer, Clock::time_point now) const;

  // How often a check looks; silence is noticed within peer_timeout plus this.
  static constexpr std::chrono::milliseconds kCheckPeriod{100};

 private:
  // Restarts every timer when the watcher was held up, saying so in `check`.
  void restart_if_held_up(Clock::time_point now, Check& check);

  const std::chrono::milliseconds peer_timeout_;
  std::vector<Clock::time_point> heard_;  // [peer]
  std::vector<Clock::time_point> sent_;   // [peer]
  std::optional<Clock::time_point> last_check_;
};

template <typename Watched>
PeerLiveness::Check PeerLiveness::check(Clock::time_point now, Watched watched) {
  Check result;
  if (last_check_ && now - *last_check_ < kCheckPeriod) return result;
  restart_if_held_up(now, result);
  last_check_ = now;
  for (int peer = 0; peer < static_cast<int>(heard_.size()); ++peer) {
    if (!watched(peer)) continue;
    if (silence(peer, now) > peer_timeout_) {
      result.silent.push_back(peer);
    } else if (now - sent_[static_cast<size_t>(peer)] >= heartbeat_interval()) {
      result.heartbeat_due.push_back(peer);
    }
  }
  return result;
}

}  // namespace torchwan::transport::core
