#include "elastic/membership_wire.h"

#include <fmt/format.h>

#include <iterator>
#include <string_view>

#include "base/byte_io.h"
#include "base/enum_names.h"
#include "elastic/errors.h"

namespace torchwan::elastic {
namespace {

// Message type names, in wire-id order from each direction's first type.
constexpr const char* kToCoordinatorNames[] = {"register", "heartbeat", "leave", "peer-lost",
                                               "request-epoch"};
constexpr const char* kToMemberNames[] = {"welcome", "status", "epoch",         "goodbye",
                                          "stop",    "reject", "unknown-member"};
static_assert(std::size(kToCoordinatorNames) == static_cast<size_t>(MessageType::kRequestEpoch) -
                                                    static_cast<size_t>(MessageType::kRegister) +
                                                    1);
static_assert(std::size(kToMemberNames) == static_cast<size_t>(MessageType::kUnknownMember) -
                                               static_cast<size_t>(MessageType::kWelcome) + 1);
constexpr const char* kInvalidType = "invalid";

bool is_known_type(uint16_t type) {
  return message_type_name(static_cast<MessageType>(type)) != std::string_view(kInvalidType);
}

std::string hex(uint64_t value) { return fmt::format("{:#x}", value); }

// Payload and header fields are read with the one byte reader (base/byte_io.h); what it refuses
// is a WireError (kMalformedPayload, or kTrailingBytes for bytes left over) with its message.
class Reader : public base::ByteReader {
 public:
  using base::ByteReader::ByteReader;

 protected:
  [[noreturn]] void raise(const base::MalformedBytes& malformed) const override {
    throw WireError(malformed);
  }
};

using Writer = base::ByteWriter;

// Identifiers are short and must be present: an empty or huge name is a bug or an attack.
std::string read_name(Reader& reader, const char* field, bool may_be_empty = false) {
  std::string value = reader.get_string(field, kMaxNameBytes);
  if (!may_be_empty && value.empty()) {
    reader.reject(field, "empty (must be 1.." + std::to_string(kMaxNameBytes) + " bytes)");
  }
  return value;
}

// Free text (reasons, capabilities): bounded by the frame.
std::string read_text(Reader& reader, const char* field) {
  return reader.get_string(field, kMaxPayloadBytes);
}

void write_strings(Writer& writer, const std::vector<std::string>& values) {
  writer.put(static_cast<uint32_t>(values.size()));
  for (const auto& value : values) writer.put_string(value);
}

std::vector<std::string> read_strings(Reader& reader, const char* field) {
  // Every string has at least its 4-byte length.
  std::vector<std::string> values(reader.get_count(field, 4));
  for (auto& value : values) value = read_text(reader, field);
  return values;
}

// One write and one read per payload type; encode and decode below frame them.
void write(Writer& writer, const MemberRef& value) {
  writer.put_string(value.name);
  writer.put(value.incarnation);
}

void read(Reader& reader, MemberRef& value) {
  value.name = read_name(reader, "member name");
  value.incarnation = reader.get<uint64_t>("incarnation");
}

void write(Writer& writer, const MemberInfo& value) {
  writer.put_string(value.name);
  writer.put_string(value.address);
  writer.put_string(value.region);
  write_strings(writer, value.capabilities);
}

void read(Reader& reader, MemberInfo& value) {
  value.name = read_name(reader, "member name");
  value.address = read_name(reader, "member address", /*may_be_empty=*/true);
  value.region = read_name(reader, "region", /*may_be_empty=*/true);
  value.capabilities = read_strings(reader, "capabilities");
}

void write(Writer& writer, const RegisterPayload& value) {
  writer.put_string(value.job_id);
  write(writer, value.member);
  writer.put(value.incarnation);
  writer.put(value.last_epoch);
  write_strings(writer, value.last_members);
}

void read(Reader& reader, RegisterPayload& value) {
  value.job_id = read_name(reader, "job id");
  read(reader, value.member);
  value.incarnation = reader.get<uint64_t>("incarnation");
  value.last_epoch = reader.get<uint64_t>("last epoch");
  value.last_members = read_strings(reader, "last members");
}

void write(Writer& writer, const StatusPayload& value) {
  writer.put(value.state);
  writer.put(value.epoch);
  writer.put(value.num_waiting);
}

void read(Reader& reader, StatusPayload& value) {
  const auto state = reader.get<uint8_t>("member state");
  if (state < static_cast<uint8_t>(MemberState::kWaiting) ||
      state > static_cast<uint8_t>(MemberState::kStopped)) {
    reader.reject("member state", "unknown member state " + std::to_string(state));
  }
  value.state = static_cast<MemberState>(state);
  value.epoch = reader.get<uint64_t>("epoch");
  value.num_waiting = reader.get<uint32_t>("waiting count");
}

void write(Writer& writer, const PeerLostPayload& value) {
  write(writer, value.reporter);
  writer.put_string(value.peer);
  writer.put_string(value.reason);
}

void read(Reader& reader, PeerLostPayload& value) {
  read(reader, value.reporter);
  value.peer = read_name(reader, "lost peer name");
  value.reason = read_text(reader, "reason");
}

void write(Writer& writer, const EpochPayload& value) {
  writer.put(value.epoch);
  writer.put(value.num_waiting);
  writer.put(static_cast<uint32_t>(value.members.size()));
  for (const auto& member : value.members) write(writer, member);
}

void read(Reader& reader, EpochPayload& value) {
  value.epoch = reader.get<uint64_t>("epoch");
  value.num_waiting = reader.get<uint32_t>("waiting count");
  // name, address, region lengths and the capability count: 16 bytes at least per member.
  value.members.resize(reader.get_count("member count", 16));
  for (auto& member : value.members) read(reader, member);
}

void write(Writer& writer, const ReasonPayload& value) { writer.put_string(value.reason); }

void read(Reader& reader, ReasonPayload& value) { value.reason = read_text(reader, "reason"); }

template <typename Payload>
std::vector<uint8_t> encode(const Payload& value) {
  Writer writer;
  write(writer, value);
  return writer.take();
}

}  // namespace

const char* message_type_name(MessageType type) {
  return is_member_to_coordinator(type)
             ? base::enum_name(type, kToCoordinatorNames, kInvalidType, MessageType::kRegister)
             : base::enum_name(type, kToMemberNames, kInvalidType, MessageType::kWelcome);
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
  Writer writer;
  writer.put(kWireMagic);
  writer.put(kProtocolVersion);
  writer.put(type);
  writer.put(job);
  writer.put(epoch);
  writer.put(sequence);
  writer.put(static_cast<uint32_t>(payload.size()));
  writer.put(payload_checksum(payload));
  writer.put_bytes(payload);
  return writer.take();
}

Message decode_message(std::span<const uint8_t> frame, std::optional<uint64_t> expected_job) {
  if (frame.size() < kHeaderBytes) {
    throw WireError(WireErrorKind::kTruncated, "frame of " + std::to_string(frame.size()) +
                                                   " bytes is shorter than the " +
                                                   std::to_string(kHeaderBytes) + "-byte header");
  }
  Reader reader(frame.first(kHeaderBytes), "membership message header");
  Message message;
  Header& header = message.header;
  const auto magic = reader.get<uint32_t>("magic");
  if (magic != kWireMagic) {
    throw WireError(WireErrorKind::kBadMagic, "magic " + hex(magic));
  }
  const auto version = reader.get<uint16_t>("version");
  if (version != kProtocolVersion) {
    throw WireError(WireErrorKind::kBadVersion,
                    fmt::format("protocol version {}, this build speaks {} (run the same torchwan "
                                "version on coordinator and members)",
                                version, kProtocolVersion));
  }
  const auto type = reader.get<uint16_t>("type");
  if (!is_known_type(type)) {
    throw WireError(WireErrorKind::kBadType, "type " + std::to_string(type));
  }
  header.type = static_cast<MessageType>(type);
  header.job = reader.get<uint64_t>("job hash");
  if (expected_job && header.job != *expected_job) {
    throw WireError(WireErrorKind::kWrongJob,
                    "job hash " + hex(header.job) + ", expected " + hex(*expected_job));
  }
  header.epoch = reader.get<uint64_t>("epoch");
  header.sequence = reader.get<uint64_t>("sequence");
  header.payload_length = reader.get<uint32_t>("payload length");
  const auto announced_checksum = reader.get<uint32_t>("checksum");
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
  if (checksum != announced_checksum) {
    throw WireError(WireErrorKind::kBadChecksum,
                    "checksum " + hex(checksum) + ", header says " + hex(announced_checksum));
  }
  return message;
}

std::optional<uint64_t> peek_job_hash(std::span<const uint8_t> frame) {
  if (frame.size() < kHeaderBytes) return std::nullopt;
  Reader reader(frame.first(kHeaderBytes), "membership message header");
  if (reader.get<uint32_t>("magic") != kWireMagic) return std::nullopt;
  (void)reader.get<uint16_t>("version");
  (void)reader.get<uint16_t>("type");
  return reader.get<uint64_t>("job hash");
}

std::vector<uint8_t> encode_payload(const MemberRef& value) { return encode(value); }
std::vector<uint8_t> encode_payload(const RegisterPayload& value) { return encode(value); }
std::vector<uint8_t> encode_payload(const StatusPayload& value) { return encode(value); }
std::vector<uint8_t> encode_payload(const PeerLostPayload& value) { return encode(value); }
std::vector<uint8_t> encode_payload(const EpochPayload& value) { return encode(value); }
std::vector<uint8_t> encode_payload(const ReasonPayload& value) { return encode(value); }

template <typename Payload>
Payload decode_payload(std::span<const uint8_t> payload) {
  Reader reader(payload, Payload::kWireName);
  Payload value;
  read(reader, value);
  reader.expect_end();
  return value;
}

template MemberRef decode_payload<MemberRef>(std::span<const uint8_t>);
template RegisterPayload decode_payload<RegisterPayload>(std::span<const uint8_t>);
template StatusPayload decode_payload<StatusPayload>(std::span<const uint8_t>);
template PeerLostPayload decode_payload<PeerLostPayload>(std::span<const uint8_t>);
template EpochPayload decode_payload<EpochPayload>(std::span<const uint8_t>);
template ReasonPayload decode_payload<ReasonPayload>(std::span<const uint8_t>);

void expect_empty(std::span<const uint8_t> payload) {
  Reader(payload, "payload of a message that has none").expect_end();
}

}  // namespace torchwan::elastic
