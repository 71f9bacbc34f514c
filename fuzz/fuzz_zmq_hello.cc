// ZeroMQ transport hello (transport/zmq/zmq_wire.h): decode_hello, then check_hello against a
// fixed expected group, as the receiving ROUTER does on every new connection.
#include <cstddef>
#include <cstdint>
#include <string>

#include "transport/zmq/zmq_wire.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace torchwan::transport::zmq_detail;
  std::string why;
  const auto hello = decode_hello(data, size, why);
  if (!hello) return 0;
  const Hello expected{.rank = 0, .lane = 0, .size = 4, .lanes = 2, .chunk_bytes = 1 << 20};
  check_hello(*hello, 1, 1, expected);
  return 0;
}
