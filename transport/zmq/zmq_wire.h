// What the ZeroMQ transport puts on the wire (its store records: zmq_records.h). Every message is
// two frames, [header, payload]: a fixed little-endian header (preamble, tag, message index, total
// length, piece offset, piece length, job id hash, membership epoch) and the bytes it describes.
// Decoders check every field against the frame sizes before anyone touches memory, so a malformed
// or foreign message is rejected with a reason, never read out of bounds.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "transport/core/wire_header.h"
#include "transport/request.h"

namespace torchwan::transport::zmq_detail {

enum class MessageType : uint16_t {
  kData = 1,     // one piece of a message
  kControl = 2,  // a control message (transport/core/control_wire.h) is the payload
  kCancel = 3,   // the sender canceled message (tag, index) before all its pieces left
};
// The control messages on this link: a hello first on every connection; on orderly departure a
// rank sends a shutdown goodbye on each DEALER, after everything it already sent there, and the
// peer's ROUTER answers a goodbye acknowledgement on that connection.

// Begins with the shared preamble (transport/core/wire_header.h): magic, version, type.
struct Header {
  MessageType type = MessageType::kData;
  uint64_t tag = 0;
  uint64_t index = 0;         // per (sender, receiver, tag): the n-th message with this tag
  uint64_t total_length = 0;  // of the whole message
  uint64_t offset = 0;        // of this piece within the message
  uint64_t length = 0;        // of this piece; equals the payload frame's size
  // Whom the message is for: the receiver drops frames of another job or membership epoch, so
  // traffic recorded in one epoch cannot be replayed into the next.
  uint64_t job = 0;  // job_id_hash(TransportOptions::job_id)
  uint64_t epoch = 0;
};
inline constexpr size_t kHeaderBytes = 64;

std::array<uint8_t, kHeaderBytes> encode_header(const Header& header);
// Decodes a header frame and checks it against the size of the payload frame that came with it.
// Throws core::WireError naming the problem when the frame is not a valid header of this
// protocol version.
Header decode_header(const void* bytes, size_t size, size_t payload_size);

// The ZMQ routing id of rank `rank`'s DEALER on `lane`. It never starts with a zero byte (ZMQ
// reserves those for ids it generates), so a socket that did not set one is told apart: "TW", then
// the rank and the lane as u16.
inline constexpr size_t kRoutingIdBytes = 6;
std::string routing_id(int rank, int lane);
struct LaneOwner {
  int rank;
  int lane;
};
std::optional<LaneOwner> decode_routing_id(const void* bytes, size_t size);

}  // namespace torchwan::transport::zmq_detail
