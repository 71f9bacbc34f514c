// Membership payload decoders (elastic/membership_wire.h) without the frame checksum in the way:
// the first byte picks the decoder, the rest is its payload. Malformed input must end in WireError.
#include <cstddef>
#include <cstdint>
#include <span>

#include "elastic/errors.h"
#include "elastic/membership_wire.h"

namespace {

using namespace torchwan::elastic;

// Runs the decoder of the `which`-th of Payloads.
template <typename... Payloads>
void decode_one_of(size_t which, std::span<const uint8_t> payload) {
  size_t index = 0;
  ((index++ == which ? static_cast<void>(decode_payload<Payloads>(payload)) : void()), ...);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size == 0) return 0;
  const std::span<const uint8_t> payload(data + 1, size - 1);
  try {
    const size_t which = data[0] % 7;
    if (which == 6) {
      expect_empty(payload);
    } else {
      decode_one_of<MemberRef, RegisterPayload, StatusPayload, PeerLostPayload, EpochPayload,
                    ReasonPayload>(which, payload);
    }
  } catch (const WireError&) {
  }
  return 0;
}
