// The control wire both links speak (transport/core/control_wire.h): hellos, heartbeats,
// goodbyes whose reason text a peer chooses, acknowledgements. decode_control either returns a
// message or throws WireError; an accepted hello is then checked against a fixed group, as each
// link does on every new connection.
#include <cstddef>
#include <cstdint>
#include <variant>

#include "transport/core/control_wire.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace torchwan::transport::core;
  ControlMessage message;
  try {
    message = decode_control(data, size);
  } catch (const WireError&) {
    return 0;
  }
  if (size != kControlBytes) __builtin_trap();  // only whole control messages are accepted
  if (const auto* goodbye = std::get_if<Goodbye>(&message)) {
    if (goodbye->reason.size() >= kControlBytes) __builtin_trap();
  }
  if (const auto* hello = std::get_if<Hello>(&message)) {
    Hello expected;
    expected.size = 4;
    expected.lanes = 2;
    expected.chunk_bytes = 1 << 20;
    expected.stripe_min_bytes = 1 << 16;
    check_hello(*hello, 1, 1, expected);
  }
  return 0;
}
