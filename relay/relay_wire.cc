#include "relay/relay_wire.h"

#include <string>

#include "base/byte_io.h"

namespace torchwan::relay {
namespace {

// Throws the relay's own error type with ByteReader's message (field, offset, problem).
class RelayReader : public base::ByteReader {
 public:
  explicit RelayReader(std::span<const uint8_t> bytes) : ByteReader(bytes, "relay frame") {}

 protected:
  [[noreturn]] void raise(const base::MalformedBytes& malformed) const override {
    throw RelayWireError(malformed.what());
  }
};

std::string read_id(RelayReader& reader, std::string_view field) {
  std::string id = reader.get_string(field, kMaxIdBytes);
  if (id.empty()) reader.reject(field, "empty");
  return id;
}

}  // namespace

const char* frame_type_name(FrameType type) {
  switch (type) {
    case FrameType::kRegister:
      return "REGISTER";
    case FrameType::kRegistered:
      return "REGISTERED";
    case FrameType::kData:
      return "DATA";
    case FrameType::kCredit:
      return "CREDIT";
    case FrameType::kNoRoute:
      return "NO_ROUTE";
    case FrameType::kRefused:
      return "REFUSED";
  }
  return "unknown";
}

std::vector<uint8_t> encode_frame(const Frame& frame) {
  base::ByteWriter writer;
  writer.put(kRelayMagic);
  writer.put(kRelayVersion);
  writer.put(frame.type);
  switch (frame.type) {
    case FrameType::kRegister:
      writer.put_string(frame.job_id);
      writer.put_string(frame.member);
      break;
    case FrameType::kRegistered:
      writer.put(frame.window_bytes);
      writer.put(frame.max_chunk_bytes);
      break;
    case FrameType::kData:
      writer.put_string(frame.peer);
      writer.put(frame.lane);
      writer.put(static_cast<uint32_t>(frame.bytes));
      break;
    case FrameType::kCredit:
      writer.put_string(frame.peer);
      writer.put(frame.lane);
      writer.put(frame.bytes);
      break;
    case FrameType::kNoRoute:
      writer.put_string(frame.peer);
      writer.put_string(frame.reason.substr(0, kMaxReasonBytes));
      break;
    case FrameType::kRefused:
      writer.put_string(frame.reason.substr(0, kMaxReasonBytes));
      break;
  }
  return writer.take();
}

Frame decode_frame(std::span<const uint8_t> bytes) {
  RelayReader reader(bytes);
  if (reader.get<uint32_t>("magic") != kRelayMagic) reader.reject("magic", "not a relay frame");
  const auto version = reader.get<uint8_t>("version");
  if (version != kRelayVersion) {
    reader.reject("version", "version " + std::to_string(version) + ", this relay speaks " +
                                 std::to_string(kRelayVersion));
  }
  Frame frame;
  frame.type = reader.get<FrameType>("type");
  switch (frame.type) {
    case FrameType::kRegister:
      frame.job_id = reader.get_string("job id", kMaxIdBytes);
      frame.member = read_id(reader, "member id");
      break;
    case FrameType::kRegistered:
      frame.window_bytes = reader.get<uint64_t>("window bytes");
      if (frame.window_bytes == 0) reader.reject("window bytes", "zero");
      frame.max_chunk_bytes = reader.get<uint32_t>("max chunk bytes");
      if (frame.max_chunk_bytes == 0) reader.reject("max chunk bytes", "zero");
      break;
    case FrameType::kData:
      frame.peer = read_id(reader, "peer");
      frame.lane = reader.get<uint32_t>("lane");
      frame.bytes = reader.get<uint32_t>("payload length");
      break;
    case FrameType::kCredit:
      frame.peer = read_id(reader, "peer");
      frame.lane = reader.get<uint32_t>("lane");
      frame.bytes = reader.get<uint64_t>("credit bytes");
      if (frame.bytes == 0) reader.reject("credit bytes", "zero");
      break;
    case FrameType::kNoRoute:
      frame.peer = read_id(reader, "peer");
      frame.reason = reader.get_string("reason", kMaxReasonBytes);
      break;
    case FrameType::kRefused:
      frame.reason = reader.get_string("reason", kMaxReasonBytes);
      break;
    default:
      reader.reject("type",
                    "unknown frame type " + std::to_string(static_cast<unsigned>(frame.type)));
  }
  reader.expect_end();
  return frame;
}

// Designated initializers keep each shorthand to the fields its frame type carries.
Frame register_frame(std::string job_id, std::string member) {
  return {.type = FrameType::kRegister, .job_id = std::move(job_id), .member = std::move(member)};
}

Frame registered_frame(uint64_t window_bytes, uint32_t max_chunk_bytes) {
  return {.type = FrameType::kRegistered,
          .window_bytes = window_bytes,
          .max_chunk_bytes = max_chunk_bytes};
}

Frame data_frame(std::string peer, uint32_t lane, uint64_t payload_bytes) {
  return {.type = FrameType::kData, .peer = std::move(peer), .lane = lane, .bytes = payload_bytes};
}

Frame credit_frame(std::string peer, uint32_t lane, uint64_t bytes) {
  return {.type = FrameType::kCredit, .peer = std::move(peer), .lane = lane, .bytes = bytes};
}

Frame no_route_frame(std::string peer, std::string reason) {
  return {.type = FrameType::kNoRoute, .peer = std::move(peer), .reason = std::move(reason)};
}

Frame refused_frame(std::string reason) {
  return {.type = FrameType::kRefused, .reason = std::move(reason)};
}

}  // namespace torchwan::relay
