// TCP tuning of the relay's connections, at either end (each member's DEALER, which takes the
// transport's congestion control, BBR by default; the relay's accepted connections, with
// --congestion). A relayed lane crosses two long hops; with loss-based congestion control (cubic)
// on the member's hop one drop leaves that lane crawling at a halved window while the other lanes
// are done, and a one-way relayed stream ends at a fraction of the link (docs/relay.md,
// Performance).
#pragma once

#include <string>

namespace torchwan::relay {

// Sets TCP congestion control `name` on socket `fd`. Returns "" when set, else why not (the
// kernel lacks it, or `fd` is no TCP socket); the connection keeps the system default then.
std::string set_congestion_control(int fd, const std::string& name);

}  // namespace torchwan::relay
