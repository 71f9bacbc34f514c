// TCP tuning of the relay's connections, at both ends (the relay's accepted connections and each
// member's DEALER). A relayed lane crosses two long hops; with loss-based congestion control
// (cubic) one drop leaves that lane's connection crawling at a halved window while the other lanes
// are done, and the relayed stream ends at a fraction of the link (docs/relay.md, Performance).
// BBR keeps each hop full, as the transports ask for on their own data connections.
#pragma once

#include <string>

namespace torchwan::relay {

// Sets TCP congestion control `name` on socket `fd`. Returns "" when set, else why not (the
// kernel lacks it, or `fd` is no TCP socket); the connection keeps the system default then.
std::string set_congestion_control(int fd, const std::string& name);

}  // namespace torchwan::relay
