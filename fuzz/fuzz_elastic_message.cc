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
        decode_payload<RegisterPayload>(message.payload);
        break;
      case MessageType::kHeartbeat:
      case MessageType::kLeave:
      case MessageType::kRequestEpoch:
        decode_payload<MemberRef>(message.payload);
        break;
      case MessageType::kPeerLost:
        decode_payload<PeerLostPayload>(message.payload);
        break;
      case MessageType::kWelcome:
      case MessageType::kStatus:
        decode_payload<StatusPayload>(message.payload);
        break;
      case MessageType::kEpoch:
        decode_payload<EpochPayload>(message.payload);
        break;
      case MessageType::kStop:
      case MessageType::kReject:
        decode_payload<ReasonPayload>(message.payload);
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
