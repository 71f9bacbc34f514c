// Tag layout shared by every rank. Collective messages carry [seq:31][step:16] with bit 47 clear,
// so two calls with different sequence numbers can never match each other's messages, and
// point-to-point messages set bit 47 so they can never match a collective's.
#include "csrc/collectives.h"

namespace torchwan::engine {

transport::Tag collective_tag(uint32_t seq, uint32_t step) {
  return (static_cast<transport::Tag>(seq & 0x7fffffffu) << 16) | (step & 0xffffu);
}

transport::Tag p2p_tag(uint32_t user_tag) { return (transport::Tag{1} << 47) | user_tag; }

}  // namespace torchwan::engine
