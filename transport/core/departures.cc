#include "transport/core/departures.h"

#include <algorithm>

namespace torchwan::transport::core {

Departures::Departures(int size, int lanes)
    : lanes_(lanes), said_(static_cast<size_t>(size) * static_cast<size_t>(lanes), 0) {}

ControlVerdict Departures::on_control(int peer, int lane, const ControlMessage& message) {
  using Kind = ControlVerdict::Kind;
  const std::string on_lane = " on lane " + std::to_string(lane);
  if (std::holds_alternative<Heartbeat>(message)) return {Kind::kAlive, ErrorKind::kPeerLost, ""};
  const auto* goodbye = std::get_if<Goodbye>(&message);
  if (goodbye == nullptr) {
    const std::string hint = std::holds_alternative<Hello>(message)
                                 ? " after its hello (did it reconnect after a failure?)"
                                 : ", where only data, heartbeats and goodbyes belong";
    return {Kind::kLost, ErrorKind::kProtocol, "it sent " + describe(message) + on_lane + hint};
  }
  if (goodbye->departure == Departure::kAbort) {
    return {Kind::kLost, ErrorKind::kPeerLost, "it aborted its transport: " + goodbye->reason};
  }
  said_[static_cast<size_t>(peer * lanes_ + lane)] = 1;
  const auto first = said_.begin() + peer * lanes_;
  if (!std::all_of(first, first + lanes_, [](char said) { return said != 0; })) {
    return {Kind::kLaneLeft, ErrorKind::kPeerLost, ""};
  }
  return {Kind::kDeparted, ErrorKind::kPeerLost, "it left the group (its transport shut down)"};
}

bool Departures::lane_said_goodbye(int peer, int lane) const {
  return said_[static_cast<size_t>(peer * lanes_ + lane)] != 0;
}

bool Departures::departing(int peer) const {
  const auto first = said_.begin() + peer * lanes_;
  return std::any_of(first, first + lanes_, [](char said) { return said != 0; });
}

}  // namespace torchwan::transport::core
