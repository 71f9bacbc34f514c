// ZeroMQ relay record (transport/zmq/zmq_records.h): where a rank with relayed pairs registered
// its lanes, or why no relay admitted it.
#include <cstddef>
#include <cstdint>

#include "record_round_trip.h"
#include "transport/zmq/zmq_records.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace torchwan::transport::zmq_detail;
  check_record_round_trip(data, size, decode_relay_record, encode_relay_record);
  return 0;
}
