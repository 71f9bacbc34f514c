// Departure bookkeeping both links share (transport/core/departures.h): a peer departs only once
// every lane said goodbye, an abort goodbye or a message out of place loses it at once, and
// heartbeats are only signs of life.
#include <gtest/gtest.h>

#include <string>

#include "transport/core/departures.h"

namespace torchwan::transport::core {
namespace {

using Kind = ControlVerdict::Kind;

TEST(Departures, PeerDepartsOnlyWhenEveryLaneSaidGoodbye) {
  Departures departures(/*size=*/3, /*lanes=*/3);
  const Goodbye goodbye{Departure::kShutdown, ""};
  EXPECT_FALSE(departures.departing(1));
  EXPECT_EQ(departures.on_control(1, 2, goodbye).kind, Kind::kLaneLeft);
  EXPECT_TRUE(departures.departing(1));
  EXPECT_TRUE(departures.lane_said_goodbye(1, 2));
  EXPECT_FALSE(departures.lane_said_goodbye(1, 0));
  // The same lane again changes nothing; another peer's goodbyes count for that peer only.
  EXPECT_EQ(departures.on_control(1, 2, goodbye).kind, Kind::kLaneLeft);
  EXPECT_EQ(departures.on_control(2, 0, goodbye).kind, Kind::kLaneLeft);
  EXPECT_EQ(departures.on_control(2, 1, goodbye).kind, Kind::kLaneLeft);
  EXPECT_EQ(departures.on_control(1, 0, goodbye).kind, Kind::kLaneLeft);
  const ControlVerdict last = departures.on_control(1, 1, goodbye);
  EXPECT_EQ(last.kind, Kind::kDeparted);
  EXPECT_NE(last.cause.find("left the group"), std::string::npos) << last.cause;
  EXPECT_FALSE(departures.departing(0));
  EXPECT_TRUE(departures.departing(2));
}

TEST(Departures, AbortAndMessagesOutOfPlaceLoseThePeer) {
  Departures departures(2, 2);
  EXPECT_EQ(departures.on_control(1, 0, Heartbeat{}).kind, Kind::kAlive);
  EXPECT_FALSE(departures.departing(1));

  const ControlVerdict abort = departures.on_control(1, 1, Goodbye{Departure::kAbort, "oom"});
  EXPECT_EQ(abort.kind, Kind::kLost);
  EXPECT_EQ(abort.error, ErrorKind::kPeerLost);
  EXPECT_EQ(abort.cause, "it aborted its transport: oom");
  // An abort is no departure: the lane does not count as one that said goodbye.
  EXPECT_FALSE(departures.lane_said_goodbye(1, 1));

  const ControlVerdict hello = departures.on_control(1, 0, Hello{});
  EXPECT_EQ(hello.kind, Kind::kLost);
  EXPECT_EQ(hello.error, ErrorKind::kProtocol);
  EXPECT_NE(hello.cause.find("hello on lane 0 after its hello"), std::string::npos) << hello.cause;

  const ControlVerdict ack = departures.on_control(1, 1, GoodbyeAck{});
  EXPECT_EQ(ack.kind, Kind::kLost);
  EXPECT_EQ(ack.error, ErrorKind::kProtocol);
  EXPECT_NE(ack.cause.find("on lane 1"), std::string::npos) << ack.cause;
}

}  // namespace
}  // namespace torchwan::transport::core
