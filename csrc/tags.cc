// Tag layout shared by every rank, within the 32 bits a process group owns (the transport device
// puts the group's channel above them; transport/device.h). Collective messages carry
// [seq:15][step:16] with bit 31 clear, point-to-point messages set bit 31 and carry the user's
// non-negative tag, so the two never match each other. The sequence number wraps every 32768
// calls, far more than can be in flight: a group runs its collectives one at a time and a rank
// finishes a call only after receiving every message of it addressed to it.
#include "csrc/collectives.h"

namespace torchwan::engine {

transport::Tag collective_tag(uint32_t seq, uint32_t step) {
  return (static_cast<transport::Tag>(seq & 0x7fffu) << 16) | (step & 0xffffu);
}

transport::Tag p2p_tag(uint32_t user_tag) {
  return (transport::Tag{1} << 31) | (user_tag & 0x7fffffffu);
}

}  // namespace torchwan::engine
