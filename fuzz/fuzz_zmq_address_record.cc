// ZeroMQ address record (transport/zmq/zmq_wire.h): the lane endpoints a rank publishes in the
// bootstrap store, read back by every peer.
#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "transport/zmq/zmq_wire.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace torchwan::transport::zmq_detail;
  std::string why;
  const auto record = decode_address_record(std::vector<uint8_t>(data, data + size), why);
  if (record.has_value() != why.empty()) __builtin_trap();  // a refusal always names its reason
  return 0;
}
