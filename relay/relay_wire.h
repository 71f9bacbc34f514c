// The relay's frames. Every ZeroMQ message between a member's DEALER and the relay's ROUTER starts
// with one header frame encoded here; DATA carries its payload as a second frame, so the relay
// forwards the payload's ZeroMQ message without copying or re-encoding it.
//
//   header: magic u32 "TWRL", version u8, type u8, then the type's fields:
//   REGISTER    job id (string), member id (string)            member -> relay
//   REGISTERED  window bytes u64, max chunk bytes u32          relay -> member
//   DATA        peer (string), lane u32, payload length u32    both ways, payload in frame 2
//   CREDIT      peer (string), lane u32, bytes u64             both ways
//   NO_ROUTE    peer (string), reason (string)                  relay -> member
//   REFUSED     reason (string)                                 relay -> member
//
// On the way in, `peer` of DATA/CREDIT is the destination; the relay rewrites it to the source on
// the way out, so a member always learns who sent what from the relay, never from the sender.
// Every decode problem is a RelayWireError naming the field and offset.
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>
#include <stdexcept>
#include <string>
#include <vector>

namespace torchwan::relay {

inline constexpr uint32_t kRelayMagic = 0x4c525754;  // "TWRL" little-endian
inline constexpr uint8_t kRelayVersion = 1;
inline constexpr size_t kMaxIdBytes = 256;  // job ids and member ids
inline constexpr size_t kMaxReasonBytes = 1024;
// The largest header frame any valid message has (DATA with the longest peer id).
inline constexpr size_t kMaxHeaderBytes = 4 + 1 + 1 + 4 + kMaxIdBytes + 4 + 8;

class RelayWireError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

enum class FrameType : uint8_t {
  kRegister = 1,
  kRegistered = 2,
  kData = 3,
  kCredit = 4,
  kNoRoute = 5,
  kRefused = 6,
};

const char* frame_type_name(FrameType type);

struct Frame {
  FrameType type = FrameType::kRefused;
  std::string job_id;            // REGISTER
  std::string member;            // REGISTER
  std::string peer;              // DATA, CREDIT, NO_ROUTE
  uint32_t lane = 0;             // DATA, CREDIT
  uint64_t bytes = 0;            // DATA: payload length; CREDIT: bytes acknowledged
  uint64_t window_bytes = 0;     // REGISTERED
  uint32_t max_chunk_bytes = 0;  // REGISTERED
  std::string reason;            // NO_ROUTE, REFUSED
};

std::vector<uint8_t> encode_frame(const Frame& frame);
// Throws RelayWireError for anything that is not exactly one valid header frame.
Frame decode_frame(std::span<const uint8_t> bytes);

// Shorthands for the encoders.
Frame register_frame(std::string job_id, std::string member);
Frame registered_frame(uint64_t window_bytes, uint32_t max_chunk_bytes);
Frame data_frame(std::string peer, uint32_t lane, uint64_t payload_bytes);
Frame credit_frame(std::string peer, uint32_t lane, uint64_t bytes);
Frame no_route_frame(std::string peer, std::string reason);
Frame refused_frame(std::string reason);

}  // namespace torchwan::relay
