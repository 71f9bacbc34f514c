// How this process reached a peer process: the rung of the connection ladder that carries its
// lanes (docs/reachability.md). Read in torchwan.stats()["peers"][rank]["link"].
#pragma once

#include <cstdint>

namespace torchwan::transport {

enum class LinkRung : uint8_t {
  kDirect,   // each side connected to one of the other's addresses
  kReverse,  // only one side could connect; its connections carry both directions (both sides
             // of the pair report kReverse)
  kRelay,    // through a torchwan-relay, end to end encrypted
};

// "direct", "reverse" or "relay", as torchwan.stats() and `torchwan doctor` print them.
constexpr const char* link_rung_name(LinkRung rung) {
  switch (rung) {
    case LinkRung::kDirect:
      return "direct";
    case LinkRung::kReverse:
      return "reverse";
    case LinkRung::kRelay:
      return "relay";
  }
  return "unknown";
}

}  // namespace torchwan::transport
