// The relay's header frames (relay/relay_wire.h), as the relay decodes every message a client
// sends and a member decodes every message the relay sends. An accepted frame must survive
// re-encoding unchanged: the relay rewrites and forwards what it decodes.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <span>

#include "relay/relay_wire.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace torchwan::relay;
  Frame frame;
  try {
    frame = decode_frame({data, size});
  } catch (const RelayWireError&) {
    return 0;
  }
  const Frame again = decode_frame(encode_frame(frame));
  if (again.type != frame.type || again.job_id != frame.job_id || again.member != frame.member ||
      again.peer != frame.peer || again.lane != frame.lane || again.bytes != frame.bytes ||
      again.window_bytes != frame.window_bytes || again.max_chunk_bytes != frame.max_chunk_bytes ||
      again.reason != frame.reason) {
    std::abort();
  }
  return 0;
}
