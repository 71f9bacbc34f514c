// Membership frames (elastic/membership_wire.h): decode_message checks the header, length and
// checksum, then the payload decoder its type names runs, as on the coordinator and members.
#include <cstddef>
#include <cstdint>
#include <span>

#include "elastic/errors.h"
#include "elastic/membership_wire.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace torchwan::elastic;
  try {
    const Message message = decode_message({data, size}, job_hash("fuzz"));
    switch (message.header.type) {
      case MessageType::kRegister:
        decode_register(message.payload);
        break;
      case MessageType::kHeartbeat:
      case MessageType::kLeave:
      case MessageType::kRequestEpoch:
        decode_member_ref(message.payload);
        break;
      case MessageType::kPeerLost:
        decode_peer_lost(message.payload);
        break;
      case MessageType::kWelcome:
      case MessageType::kStatus:
        decode_status(message.payload);
        break;
      case MessageType::kEpoch:
        decode_epoch(message.payload);
        break;
      case MessageType::kStop:
      case MessageType::kReject:
        decode_reason(message.payload);
        break;
      case MessageType::kGoodbye:
      case MessageType::kUnknownMember:
        expect_empty(message.payload);
        break;
    }
  } catch (const WireError&) {
  }
  return 0;
}
