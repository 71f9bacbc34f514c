#include "transport/zmq/zmq_wire.h"

#include "transport/core/control_wire.h"

namespace torchwan::transport::zmq_detail {

std::array<uint8_t, kHeaderBytes> encode_header(const Header& header) {
  std::array<uint8_t, kHeaderBytes> bytes{};
  core::ByteWriter out(bytes);
  core::write_preamble(out, static_cast<uint16_t>(header.type));
  for (uint64_t field : {header.tag, header.index, header.total_length, header.offset,
                         header.length, header.job, header.epoch}) {
    out.put<uint64_t>(field);
  }
  return bytes;
}

Header decode_header(const void* bytes, size_t size, size_t payload_size) {
  core::ByteReader in(bytes, size, "message header");
  if (size != kHeaderBytes) {
    in.fail("header frame of " + std::to_string(size) + " bytes, expected " +
            std::to_string(kHeaderBytes));
  }
  Header header;
  const uint16_t type = core::read_preamble(in);
  header.type = static_cast<MessageType>(type);
  header.tag = in.get<uint64_t>("tag");
  header.index = in.get<uint64_t>("index");
  header.total_length = in.get<uint64_t>("total length");
  header.offset = in.get<uint64_t>("offset");
  header.length = in.get<uint64_t>("length");
  header.job = in.get<uint64_t>("job");
  header.epoch = in.get<uint64_t>("epoch");

  if (type < static_cast<uint16_t>(MessageType::kData) ||
      type > static_cast<uint16_t>(MessageType::kCancel)) {
    in.fail("unknown message type " + std::to_string(type));
  }
  // Written so that no sum can overflow: offset <= total and length <= total - offset.
  if (header.offset > header.total_length || header.length > header.total_length - header.offset) {
    in.fail("piece [" + std::to_string(header.offset) + ", +" + std::to_string(header.length) +
            ") lies outside its " + std::to_string(header.total_length) + "-byte message");
  }
  if (header.length != payload_size) {
    in.fail("header announces " + std::to_string(header.length) + " payload bytes but " +
            std::to_string(payload_size) + " came");
  }
  if (header.tag >= kMaxTag) in.fail("tag " + std::to_string(header.tag) + " is out of range");
  if (header.type == MessageType::kCancel && header.length != 0) {
    in.fail("cancel notice with a payload");
  }
  if (header.type == MessageType::kControl &&
      (header.length != core::kControlBytes || header.offset != 0 ||
       header.total_length != core::kControlBytes)) {
    in.fail("control message with a " + std::to_string(header.length) + "-byte body, expected " +
            std::to_string(core::kControlBytes));
  }
  return header;
}

std::string routing_id(int rank, int lane) {
  std::array<uint8_t, kRoutingIdBytes> bytes{};
  core::ByteWriter out(bytes);
  out.put<uint8_t>('T');
  out.put<uint8_t>('W');
  out.put<uint16_t>(static_cast<uint16_t>(rank));
  out.put<uint16_t>(static_cast<uint16_t>(lane));
  return {bytes.begin(), bytes.end()};
}

std::optional<LaneOwner> decode_routing_id(const void* bytes, size_t size) {
  if (size != kRoutingIdBytes) return std::nullopt;  // not one of ours (e.g. a ZeroMQ default id)
  core::ByteReader in(bytes, size, "routing id");
  if (in.get<uint8_t>("magic") != 'T' || in.get<uint8_t>("magic") != 'W') return std::nullopt;
  const int rank = in.get<uint16_t>("rank");
  const int lane = in.get<uint16_t>("lane");
  return LaneOwner{rank, lane};
}

}  // namespace torchwan::transport::zmq_detail
