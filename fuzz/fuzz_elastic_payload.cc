// Membership payload decoders (elastic/membership_wire.h) without the frame checksum in the way:
// the first byte picks the decoder, the rest is its payload. Malformed input must end in WireError.
#include <cstddef>
#include <cstdint>
#include <span>

#include "elastic/errors.h"
#include "elastic/membership_wire.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace torchwan::elastic;
  if (size == 0) return 0;
  const std::span<const uint8_t> payload(data + 1, size - 1);
  try {
    switch (data[0] % 7) {
      case 0:
        decode_member_ref(payload);
        break;
      case 1:
        decode_register(payload);
        break;
      case 2:
        decode_status(payload);
        break;
      case 3:
        decode_peer_lost(payload);
        break;
      case 4:
        decode_epoch(payload);
        break;
      case 5:
        decode_reason(payload);
        break;
      default:
        expect_empty(payload);
        break;
    }
  } catch (const WireError&) {
  }
  return 0;
}
