// The one liveness rule both links use (transport/core/peer_liveness.h), on explicit instants.
#include <gtest/gtest.h>

#include <chrono>
#include <vector>

#include "transport/core/peer_liveness.h"

namespace torchwan::transport::core {
namespace {

using namespace std::chrono_literals;
using Clock = PeerLiveness::Clock;

// Ranks 0-3, this one rank 0.
auto others = [](int peer) { return peer != 0; };

TEST(PeerLiveness, EveryWatchedPeerGetsAHeartbeatAtOnceAndNobodyIsSilent) {
  PeerLiveness liveness(4, 1000ms);
  const Clock::time_point start{};
  liveness.start(start);
  const auto check = liveness.check(start, others);
  EXPECT_EQ(check.heartbeat_due, (std::vector<int>{1, 2, 3}));
  EXPECT_TRUE(check.silent.empty());
  EXPECT_FALSE(check.held_up);
}

TEST(PeerLiveness, APeerSilentForLongerThanTheTimeoutIsLostAndOnlyIt) {
  PeerLiveness liveness(4, 1000ms);
  const Clock::time_point start{};
  liveness.start(start);
  // Checked often (so the watcher is not held up); peers 2 and 3 speak, peer 1 never does.
  Clock::time_point now = start;
  for (int step = 0; step < 10; ++step) {
    now += 100ms;
    liveness.heard(2, now);
    liveness.heard(3, now);
    const auto check = liveness.check(now, others);
    EXPECT_TRUE(check.silent.empty()) << "at " << step;
  }
  now += 100ms;
  const auto check = liveness.check(now, others);
  EXPECT_EQ(check.silent, (std::vector<int>{1}));
  EXPECT_NE(liveness.describe_silence(1, now).find("nothing arrived from it for 1100 ms"),
            std::string::npos)
      << liveness.describe_silence(1, now);
  // A peer that is no longer watched (lost) is not reported again.
  now += 100ms;
  EXPECT_TRUE(liveness.check(now, [](int peer) { return peer > 1; }).silent.empty());
}

TEST(PeerLiveness, WhatWasSentPutsTheNextHeartbeatOff) {
  PeerLiveness liveness(2, 1000ms);  // heartbeat interval 250 ms
  const Clock::time_point start{};
  liveness.start(start);
  liveness.sent(1, start);
  EXPECT_TRUE(liveness.check(start + 100ms, others).heartbeat_due.empty());
  liveness.sent(1, start + 200ms);
  EXPECT_TRUE(liveness.check(start + 300ms, others).heartbeat_due.empty());
  EXPECT_EQ(liveness.check(start + 450ms, others).heartbeat_due, std::vector<int>{1});
}

TEST(PeerLiveness, ChecksCloserThanThePeriodSayNothing) {
  PeerLiveness liveness(2, 1000ms);
  const Clock::time_point start{};
  liveness.start(start);
  EXPECT_FALSE(liveness.check(start, others).heartbeat_due.empty());
  EXPECT_TRUE(liveness.check(start + PeerLiveness::kCheckPeriod / 2, others).heartbeat_due.empty());
}

TEST(PeerLiveness, AWatcherHeldUpBlamesNobodyAndRestartsItsTimers) {
  PeerLiveness liveness(3, 1000ms);
  const Clock::time_point start{};
  liveness.start(start);
  liveness.check(start, others);
  // The watcher itself stopped for 5 s: its peers were silent only because it did not listen.
  const Clock::time_point resumed = start + 5s;
  auto check = liveness.check(resumed, others);
  ASSERT_TRUE(check.held_up);
  EXPECT_EQ(*check.held_up, 5s);
  EXPECT_TRUE(check.silent.empty());
  // Silence counts again from the resumption.
  check = liveness.check(resumed + 400ms, others);
  EXPECT_TRUE(check.silent.empty());
  EXPECT_FALSE(check.held_up);
  for (auto now = resumed + 500ms; now <= resumed + 1000ms; now += 100ms) {
    liveness.check(now, others);
  }
  EXPECT_EQ(liveness.check(resumed + 1100ms, others).silent, (std::vector<int>{1, 2}));
}

TEST(PeerLiveness, AnOlderSignOfLifeDoesNotMoveTheLatestBack) {
  PeerLiveness liveness(2, 1000ms);
  const Clock::time_point start{};
  liveness.start(start + 1s);  // the group formed after the peer's last arrival during setup
  liveness.heard(1, start);
  EXPECT_EQ(liveness.silence(1, start + 1s), Clock::duration::zero());
  liveness.heard(1, start + 1500ms);
  liveness.heard(1, start + 1200ms);
  EXPECT_EQ(liveness.silence(1, start + 2s), 500ms);
}

TEST(PeerLiveness, TheHeartbeatIntervalIsAQuarterOfTheTimeoutAndAtLeastTenMilliseconds) {
  EXPECT_EQ(PeerLiveness(2, 8000ms).heartbeat_interval(), 2000ms);
  EXPECT_EQ(PeerLiveness(2, 20ms).heartbeat_interval(), 10ms);
}

}  // namespace
}  // namespace torchwan::transport::core
