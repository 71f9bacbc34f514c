// What members and the coordinator put on the wire. A message is one ZMQ frame: a fixed 40-byte
// little-endian header followed by a payload encoded field by field with the byte codec
// (base/byte_io.h).
//
//   offset  size  field
//        0     4  magic "TWEL"
//        4     2  protocol version
//        6     2  message type
//        8     8  job id hash (FNV-1a 64 of the job id string)
//       16     8  epoch the sender currently holds (0: none yet)
//       24     8  sequence number, per sender, starting at 1 (for logs and duplicate detection)
//       32     4  payload length (at most kMaxPayloadBytes)
//       36     4  payload checksum (FNV-1a 32), catches corruption the transport would not
//
// Decoders check every header field, then the payload against the announced length and checksum,
// then each payload field against the bytes left; any failure throws WireError naming the reason.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace torchwan::elastic {

inline constexpr uint32_t kWireMagic = 0x4C455754;  // "TWEL" in little-endian byte order
inline constexpr uint16_t kProtocolVersion = 1;
inline constexpr size_t kHeaderBytes = 40;
// Membership state is small: even a 10,000-member epoch list stays far below this.
inline constexpr size_t kMaxPayloadBytes = size_t{1} << 20;
// Names, addresses and regions are identifiers, not data.
inline constexpr size_t kMaxNameBytes = 256;

enum class MessageType : uint16_t {
  // member -> coordinator
  kRegister = 1,      // RegisterPayload
  kHeartbeat = 2,     // MemberRef
  kLeave = 3,         // MemberRef
  kPeerLost = 4,      // PeerLostPayload
  kRequestEpoch = 5,  // MemberRef; the members reached a step boundary, joiners may be admitted
  // coordinator -> member
  kWelcome = 16,        // StatusPayload; answers kRegister
  kStatus = 17,         // StatusPayload; answers kHeartbeat
  kEpoch = 18,          // EpochPayload; a new membership epoch
  kGoodbye = 19,        // empty; answers kLeave
  kStop = 20,           // ReasonPayload; quorum lost, the job must stop
  kReject = 21,         // ReasonPayload; the request was refused
  kUnknownMember = 22,  // empty; the coordinator does not know the sender (it restarted): register
};

const char* message_type_name(MessageType type);
bool is_member_to_coordinator(MessageType type);

// FNV-1a 64: stable across builds and platforms, unlike std::hash.
uint64_t job_hash(std::string_view job_id);
uint32_t payload_checksum(std::span<const uint8_t> payload);

// The fields of a decoded header that vary (magic, version and checksum were checked).
struct Header {
  MessageType type = MessageType::kHeartbeat;
  uint64_t job = 0;       // job_hash() of the sender's job id
  uint64_t epoch = 0;     // the epoch the sender holds (0: none yet)
  uint64_t sequence = 0;  // per sender, from 1
  uint32_t payload_length = 0;
};

// A decoded frame: its header and a view of its payload (valid while the frame's bytes are).
struct Message {
  Header header;
  std::span<const uint8_t> payload;
};

// Header + payload as one frame; fills payload_length and checksum. Throws WireError(kOversize).
std::vector<uint8_t> encode_message(MessageType type, uint64_t job, uint64_t epoch,
                                    uint64_t sequence, std::span<const uint8_t> payload);
// Validates the whole frame (header fields, length, checksum). With `expected_job` set, a message
// for another job is refused with kWrongJob.
Message decode_message(std::span<const uint8_t> frame, std::optional<uint64_t> expected_job);
// The job hash of a frame that carries our magic and a full header, whatever its version: lets the
// coordinator answer a member of another protocol version with a reason instead of silence.
std::optional<uint64_t> peek_job_hash(std::span<const uint8_t> frame);

// ---- payloads ----

struct MemberRef {
  static constexpr const char* kWireName = "member reference";
  std::string name;
  uint64_t incarnation = 0;  // random per member process: tells a restarted process from the old
};

struct MemberInfo {
  std::string name;
  std::string address;  // data-plane address, opaque to the coordinator
  std::string region;
  std::vector<std::string> capabilities;
  bool operator==(const MemberInfo&) const = default;
};

struct RegisterPayload {
  static constexpr const char* kWireName = "register payload";
  std::string job_id;
  MemberInfo member;
  uint64_t incarnation = 0;
  // The epoch this member last held and that epoch's member names: after a coordinator restart
  // this is what the new coordinator rebuilds its history from.
  uint64_t last_epoch = 0;
  std::vector<std::string> last_members;
};

enum class MemberState : uint8_t {
  kWaiting = 1,     // registered, waiting to be admitted at the next epoch boundary
  kActive = 2,      // part of the current epoch
  kRecovering = 3,  // the coordinator restarted and is collecting re-registrations
  kStopped = 4,     // the job was stopped
};

struct StatusPayload {
  static constexpr const char* kWireName = "status payload";
  MemberState state = MemberState::kWaiting;
  uint64_t epoch = 0;
  uint32_t num_waiting = 0;
};

struct PeerLostPayload {
  static constexpr const char* kWireName = "peer-lost payload";
  MemberRef reporter;
  std::string peer;
  std::string reason;
};

struct EpochPayload {
  static constexpr const char* kWireName = "epoch payload";
  uint64_t epoch = 0;
  uint32_t num_waiting = 0;
  std::vector<MemberInfo> members;  // in rank order
};

struct ReasonPayload {
  static constexpr const char* kWireName = "reason payload";
  std::string reason;
};

std::vector<uint8_t> encode_payload(const MemberRef& value);
std::vector<uint8_t> encode_payload(const RegisterPayload& value);
std::vector<uint8_t> encode_payload(const StatusPayload& value);
std::vector<uint8_t> encode_payload(const PeerLostPayload& value);
std::vector<uint8_t> encode_payload(const EpochPayload& value);
std::vector<uint8_t> encode_payload(const ReasonPayload& value);

// Decodes a whole payload of one of the types above (MemberRef, RegisterPayload, StatusPayload,
// PeerLostPayload, EpochPayload, ReasonPayload). Throws WireError on malformed input, including
// left-over bytes; its message names the payload (Payload::kWireName), the field and the offset.
template <typename Payload>
Payload decode_payload(std::span<const uint8_t> payload);
// For payload-less messages.
void expect_empty(std::span<const uint8_t> payload);

}  // namespace torchwan::elastic
