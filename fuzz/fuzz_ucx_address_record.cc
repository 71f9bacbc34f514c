// UCX address record (transport/ucx/ucx_wire.h): worker addresses and striping settings a rank
// publishes in the bootstrap store, read back by every peer.
#include <cstddef>
#include <cstdint>

#include "record_round_trip.h"
#include "transport/ucx/ucx_wire.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace torchwan::transport::ucx;
  check_record_round_trip(data, size, decode_address_record, encode_address_record);
  return 0;
}
