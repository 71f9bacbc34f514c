// ZeroMQ reach record (transport/zmq/zmq_records.h): whom a rank connected to in its dial phase,
// from which every rank derives the rung of every pair.
#include <cstddef>
#include <cstdint>

#include "record_round_trip.h"
#include "transport/zmq/zmq_records.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace torchwan::transport::zmq_detail;
  check_record_round_trip(data, size, decode_reach_record, encode_reach_record);
  return 0;
}
