// ZeroMQ address record (transport/zmq/zmq_records.h): the candidate hosts and lane ports a rank
// publishes in the bootstrap store, read back by every peer.
#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "transport/zmq/zmq_records.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace torchwan::transport::zmq_detail;
  std::string why;
  const std::vector<uint8_t> bytes(data, data + size);
  const auto record = decode_address_record(bytes, why);
  if (record.has_value() != why.empty()) __builtin_trap();  // a refusal always names its reason
  if (record && encode_address_record(*record) != bytes) __builtin_trap();  // one encoding only
  return 0;
}
