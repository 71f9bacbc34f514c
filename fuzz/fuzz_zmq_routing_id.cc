// ZeroMQ routing ids (transport/zmq/zmq_wire.h): a ROUTER learns who a DEALER claims to be from
// the id it set; decode_routing_id must accept only the 6-byte form routing_id() writes.
#include <cstddef>
#include <cstdint>
#include <string>

#include "transport/zmq/zmq_wire.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace torchwan::transport::zmq_detail;
  const auto owner = decode_routing_id(data, size);
  // Whatever is accepted round-trips to the same bytes.
  if (owner && routing_id(owner->rank, owner->lane) !=
                   std::string(reinterpret_cast<const char*>(data), size)) {
    __builtin_trap();
  }
  return 0;
}
