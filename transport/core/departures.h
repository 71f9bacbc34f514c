// Departure bookkeeping and the meaning of control messages on a connected lane, the same for every
// link. A rank that leaves in order says goodbye on every lane behind that lane's data, so once
// every lane of a peer said goodbye, everything it sent has arrived: it departed. Its receives
// still waiting then fail (nothing will satisfy them), while whole messages that arrived stay
// claimable. A goodbye with an abort, or a message that has no place after the hello, loses the
// peer instead. Used on the progress thread only.
#pragma once

#include <string>
#include <vector>

#include "transport/core/control_wire.h"
#include "transport/errors.h"

namespace torchwan::transport::core {

// What a control message on a lane whose hello passed means for its peer. Causes are worded with
// the peer as subject ("it ..."), the same on every link.
struct ControlVerdict {
  enum class Kind {
    kAlive,     // a heartbeat: a sign of life and nothing else
    kLaneLeft,  // a shutdown goodbye on this lane; the peer's other lanes may still carry data
    kDeparted,  // the goodbye of the peer's last lane: it departed
    kLost,      // an abort goodbye, or a message out of place: the peer is lost
  };
  Kind kind = Kind::kAlive;
  ErrorKind error = ErrorKind::kPeerLost;  // for kLost: kPeerLost (abort) or kProtocol
  std::string cause;                       // for kDeparted and kLost
};

class Departures {
 public:
  Departures(int size, int lanes);

  // Judges `message`, which arrived from `peer` on `lane` after that lane's hello, and records a
  // shutdown goodbye.
  ControlVerdict on_control(int peer, int lane, const ControlMessage& message);
  // The peer said goodbye on `lane` (so an error or close there afterwards is expected).
  bool lane_said_goodbye(int peer, int lane) const;
  // The peer said goodbye on at least one lane: it is leaving, heartbeats to it are pointless.
  bool departing(int peer) const;

 private:
  const int lanes_;
  std::vector<char> said_;  // [peer * lanes + lane]
};

}  // namespace torchwan::transport::core
