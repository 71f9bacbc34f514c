// UCX hello (transport/ucx/ucx_wire.h): received on every lane at connection setup, decoded and
// checked against the group the receiver belongs to.
#include <cstddef>
#include <cstdint>
#include <vector>

#include "transport/ucx/ucx_wire.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace torchwan::transport::ucx;
  const Hello hello = decode_hello(std::vector<uint8_t>(data, data + size));
  check_hello(hello, 1, 4, 1);
  return 0;
}
