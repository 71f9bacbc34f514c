// ZeroMQ transport frame header (transport/zmq/zmq_wire.h): decode_header checks a header frame
// against the size of the payload frame that came with it. The first 4 input bytes are that
// payload size, the rest the header frame.
#include <cstddef>
#include <cstdint>
#include <cstring>

#include "transport/zmq/zmq_wire.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace torchwan::transport::zmq_detail;
  if (size < 4) return 0;
  uint32_t payload_size = 0;
  std::memcpy(&payload_size, data, sizeof(payload_size));
  Header header;
  try {
    header = decode_header(data + 4, size - 4, payload_size);
  } catch (const torchwan::transport::core::WireError&) {
    return 0;  // a refusal always names its reason
  }
  if (header.length != payload_size || header.offset > header.total_length ||
      header.length > header.total_length - header.offset) {
    __builtin_trap();  // an accepted piece lies inside its message
  }
  return 0;
}
