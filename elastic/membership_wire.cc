#include "elastic/membership_wire.h"

#include <fmt/format.h>

#include "elastic/byte_codec.h"
#include "elastic/errors.h"

namespace torchwan::elastic {
namespace {

bool is_known_type(uint16_t type) {
  return (type >= static_cast<uint16_t>(MessageType::kRegister) &&
          type <= static_cast<uint16_t>(MessageType::kRequestEpoch)) ||
         (type >= static_cast<uint16_t>(MessageType::kWelcome) &&
          type <= static_cast<uint16_t>(MessageType::kUnknownMember));
}

std::string hex(uint64_t value) {
  static constexpr char kDigits[] = "0123456789abcdef";
  std::string text = "0x";
  bool leading = true;
  for (int shift = 60; shift >= 0; shift -= 4) {
    const int digit = static_cast<int>((value >> shift) & 0xF);
    if (leading && digit == 0 && shift != 0) continue;
    leading = false;
    text += kDigits[digit];
  }
  return text;
}

// Identifiers are short and must be present: an empty or huge name is a bug or an attack.
std::string read_name(ByteReader& reader, const char* what, bool may_be_empty = false) {
  std::string value = reader.str();
  if ((!may_be_empty && value.empty()) || value.size() > kMaxNameBytes) {
    throw WireError(WireErrorKind::kMalformedPayload,
                    std::string(what) + " of " + std::to_string(value.size()) +
                        " bytes (must be 1.." + std::to_string(kMaxNameBytes) + ")");
  }
  return value;
}

void write_member_ref(ByteWriter& writer, const MemberRef& value) {
  writer.str(value.name);
  writer.u64(value.incarnation);
}

MemberRef read_member_ref(ByteReader& reader) {
  MemberRef value;
  value.name = read_name(reader, "member name");
  value.incarnation = reader.u64();
  return value;
}

void write_member_info(ByteWriter& writer, const MemberInfo& value) {
  writer.str(value.name);
  writer.str(value.address);
  writer.str(value.region);
  writer.str_list(value.capabilities);
}

MemberInfo read_member_info(ByteReader& reader) {
  MemberInfo value;
  value.name = read_name(reader, "member name");
  value.address = reader.str();
  if (value.address.size() > kMaxNameBytes) {
    throw WireError(WireErrorKind::kMalformedPayload,
                    "member address longer than " + std::to_string(kMaxNameBytes) + " bytes");
  }
  value.region = read_name(reader, "region", /*may_be_empty=*/true);
  value.capabilities = reader.str_list();
  return value;
}

MemberState read_state(ByteReader& reader) {
  const uint8_t state = reader.u8();
  if (state < static_cast<uint8_t>(MemberState::kWaiting) ||
      state > static_cast<uint8_t>(MemberState::kStopped)) {
    throw WireError(WireErrorKind::kMalformedPayload,
                    "unknown member state " + std::to_string(state));
  }
  return static_cast<MemberState>(state);
}

}  // namespace

const char* message_type_name(MessageType type) {
  switch (type) {
    case MessageType::kRegister:
      return "register";
    case MessageType::kHeartbeat:
      return "heartbeat";
    case MessageType::kLeave:
      return "leave";
    case MessageType::kPeerLost:
      return "peer-lost";
    case MessageType::kRequestEpoch:
      return "request-epoch";
    case MessageType::kWelcome:
      return "welcome";
    case MessageType::kStatus:
      return "status";
    case MessageType::kEpoch:
      return "epoch";
    case MessageType::kGoodbye:
      return "goodbye";
    case MessageType::kStop:
      return "stop";
    case MessageType::kReject:
      return "reject";
    case MessageType::kUnknownMember:
      return "unknown-member";
  }
  return "invalid";
}

bool is_member_to_coordinator(MessageType type) {
  return static_cast<uint16_t>(type) <= static_cast<uint16_t>(MessageType::kRequestEpoch);
}

uint64_t job_hash(std::string_view job_id) {
  uint64_t hash = 0xcbf29ce484222325ull;
  for (const char c : job_id) {
    hash ^= static_cast<uint8_t>(c);
    hash *= 0x100000001b3ull;
  }
  return hash;
}

uint32_t payload_checksum(std::span<const uint8_t> payload) {
  uint32_t hash = 0x811c9dc5u;
  for (const uint8_t byte : payload) {
    hash ^= byte;
    hash *= 0x01000193u;
  }
  return hash;
}

std::vector<uint8_t> encode_message(MessageType type, uint64_t job, uint64_t epoch,
                                    uint64_t sequence, std::span<const uint8_t> payload) {
  if (payload.size() > kMaxPayloadBytes) {
    throw WireError(WireErrorKind::kOversize, "payload of " + std::to_string(payload.size()) +
                                                  " bytes exceeds the " +
                                                  std::to_string(kMaxPayloadBytes) + " cap");
  }
  ByteWriter writer;
  writer.u32(kWireMagic);
  writer.u16(kProtocolVersion);
  writer.u16(static_cast<uint16_t>(type));
  writer.u64(job);
  writer.u64(epoch);
  writer.u64(sequence);
  writer.u32(static_cast<uint32_t>(payload.size()));
  writer.u32(payload_checksum(payload));
  std::vector<uint8_t> frame = writer.take();
  frame.insert(frame.end(), payload.begin(), payload.end());
  return frame;
}

Message decode_message(std::span<const uint8_t> frame, std::optional<uint64_t> expected_job) {
  if (frame.size() < kHeaderBytes) {
    throw WireError(WireErrorKind::kTruncated, "frame of " + std::to_string(frame.size()) +
                                                   " bytes is shorter than the " +
                                                   std::to_string(kHeaderBytes) + "-byte header");
  }
  ByteReader reader(frame.first(kHeaderBytes));
  Message message;
  Header& header = message.header;
  header.magic = reader.u32();
  if (header.magic != kWireMagic) {
    throw WireError(WireErrorKind::kBadMagic, "magic " + hex(header.magic));
  }
  header.version = reader.u16();
  if (header.version != kProtocolVersion) {
    throw WireError(WireErrorKind::kBadVersion,
                    fmt::format("protocol version {}, this build speaks {} (run the same torchwan "
                                "version on coordinator and members)",
                                header.version, kProtocolVersion));
  }
  const uint16_t type = reader.u16();
  if (!is_known_type(type)) {
    throw WireError(WireErrorKind::kBadType, "type " + std::to_string(type));
  }
  header.type = static_cast<MessageType>(type);
  header.job = reader.u64();
  if (expected_job && header.job != *expected_job) {
    throw WireError(WireErrorKind::kWrongJob,
                    "job hash " + hex(header.job) + ", expected " + hex(*expected_job));
  }
  header.epoch = reader.u64();
  header.sequence = reader.u64();
  header.payload_length = reader.u32();
  header.checksum = reader.u32();
  if (header.payload_length > kMaxPayloadBytes) {
    throw WireError(WireErrorKind::kOversize,
                    "payload length " + std::to_string(header.payload_length) + " exceeds the " +
                        std::to_string(kMaxPayloadBytes) + " cap");
  }
  const size_t available = frame.size() - kHeaderBytes;
  if (available < header.payload_length) {
    throw WireError(WireErrorKind::kTruncated,
                    "header announces " + std::to_string(header.payload_length) +
                        " payload bytes, frame holds " + std::to_string(available));
  }
  if (available > header.payload_length) {
    throw WireError(WireErrorKind::kLengthMismatch,
                    "header announces " + std::to_string(header.payload_length) +
                        " payload bytes, frame holds " + std::to_string(available));
  }
  message.payload = frame.subspan(kHeaderBytes);
  const uint32_t checksum = payload_checksum(message.payload);
  if (checksum != header.checksum) {
    throw WireError(WireErrorKind::kBadChecksum,
                    "checksum " + hex(checksum) + ", header says " + hex(header.checksum));
  }
  return message;
}

std::optional<uint64_t> peek_job_hash(std::span<const uint8_t> frame) {
  if (frame.size() < kHeaderBytes) return std::nullopt;
  ByteReader reader(frame.first(kHeaderBytes));
  if (reader.u32() != kWireMagic) return std::nullopt;
  (void)reader.u16();  // version
  (void)reader.u16();  // type
  return reader.u64();
}

std::vector<uint8_t> encode_payload(const MemberRef& value) {
  ByteWriter writer;
  write_member_ref(writer, value);
  return writer.take();
}

std::vector<uint8_t> encode_payload(const RegisterPayload& value) {
  ByteWriter writer;
  writer.str(value.job_id);
  write_member_info(writer, value.member);
  writer.u64(value.incarnation);
  writer.u64(value.last_epoch);
  writer.str_list(value.last_members);
  return writer.take();
}

std::vector<uint8_t> encode_payload(const StatusPayload& value) {
  ByteWriter writer;
  writer.u8(static_cast<uint8_t>(value.state));
  writer.u64(value.epoch);
  writer.u32(value.num_waiting);
  return writer.take();
}

std::vector<uint8_t> encode_payload(const PeerLostPayload& value) {
  ByteWriter writer;
  write_member_ref(writer, value.reporter);
  writer.str(value.peer);
  writer.str(value.reason);
  return writer.take();
}

std::vector<uint8_t> encode_payload(const EpochPayload& value) {
  ByteWriter writer;
  writer.u64(value.epoch);
  writer.u32(value.num_waiting);
  writer.u32(static_cast<uint32_t>(value.members.size()));
  for (const auto& member : value.members) write_member_info(writer, member);
  return writer.take();
}

std::vector<uint8_t> encode_payload(const ReasonPayload& value) {
  ByteWriter writer;
  writer.str(value.reason);
  return writer.take();
}

MemberRef decode_member_ref(std::span<const uint8_t> payload) {
  ByteReader reader(payload);
  MemberRef value = read_member_ref(reader);
  reader.expect_end();
  return value;
}

RegisterPayload decode_register(std::span<const uint8_t> payload) {
  ByteReader reader(payload);
  RegisterPayload value;
  value.job_id = read_name(reader, "job id");
  value.member = read_member_info(reader);
  value.incarnation = reader.u64();
  value.last_epoch = reader.u64();
  value.last_members = reader.str_list();
  reader.expect_end();
  return value;
}

StatusPayload decode_status(std::span<const uint8_t> payload) {
  ByteReader reader(payload);
  StatusPayload value;
  value.state = read_state(reader);
  value.epoch = reader.u64();
  value.num_waiting = reader.u32();
  reader.expect_end();
  return value;
}

PeerLostPayload decode_peer_lost(std::span<const uint8_t> payload) {
  ByteReader reader(payload);
  PeerLostPayload value;
  value.reporter = read_member_ref(reader);
  value.peer = read_name(reader, "lost peer name");
  value.reason = reader.str();
  reader.expect_end();
  return value;
}

EpochPayload decode_epoch(std::span<const uint8_t> payload) {
  ByteReader reader(payload);
  EpochPayload value;
  value.epoch = reader.u64();
  value.num_waiting = reader.u32();
  // name, address, region lengths and the capability count: 16 bytes at least per member.
  const uint32_t count = reader.count(16);
  value.members.reserve(count);
  for (uint32_t i = 0; i < count; ++i) value.members.push_back(read_member_info(reader));
  reader.expect_end();
  return value;
}

ReasonPayload decode_reason(std::span<const uint8_t> payload) {
  ByteReader reader(payload);
  ReasonPayload value;
  value.reason = reader.str();
  reader.expect_end();
  return value;
}

void expect_empty(std::span<const uint8_t> payload) { ByteReader(payload).expect_end(); }

}  // namespace torchwan::elastic
