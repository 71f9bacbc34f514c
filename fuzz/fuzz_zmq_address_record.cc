// ZeroMQ address record (transport/zmq/zmq_records.h): the candidate hosts and lane ports a rank
// publishes in the bootstrap store, read back by every peer.
#include <cstddef>
#include <cstdint>

#include "record_round_trip.h"
#include "transport/zmq/zmq_records.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace torchwan::transport::zmq_detail;
  check_record_round_trip(data, size, decode_address_record, encode_address_record);
  return 0;
}
