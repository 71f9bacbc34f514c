// UCX address record (transport/ucx/ucx_wire.h): worker addresses and striping settings a rank
// publishes in the bootstrap store, read back by every peer.
#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "transport/ucx/ucx_wire.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace torchwan::transport::ucx;
  std::string why;
  const auto record = decode_address_record(std::vector<uint8_t>(data, data + size), why);
  if (record.has_value() != why.empty()) __builtin_trap();  // a refusal always names its reason
  // What was accepted encodes back to the same bytes: no field was skipped or misread.
  if (record && encode_address_record(*record) != std::vector<uint8_t>(data, data + size)) {
    __builtin_trap();
  }
  return 0;
}
