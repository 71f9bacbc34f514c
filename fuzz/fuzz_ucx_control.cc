// UCX control messages (transport/ucx/ucx_wire.h): heartbeats and goodbyes whose reason text a
// peer chooses.
#include <cstddef>
#include <cstdint>
#include <vector>

#include "transport/ucx/ucx_wire.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace torchwan::transport::ucx;
  const auto message = decode_control(std::vector<uint8_t>(data, data + size));
  if (message && message->reason.size() >= kControlBytes) __builtin_trap();
  return 0;
}
