// The start every header on the data-plane wire shares, whichever link carries it: magic, protocol
// version and message type, little-endian. The control wire (control_wire.h) and the ZeroMQ
// link's piece header both begin with it, so a foreign or mismatched peer is named the same way
// everywhere. Decoders throw WireError naming what is malformed; nothing is read out of bounds.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "transport/errors.h"

namespace torchwan::transport::core {

inline constexpr uint32_t kWireMagic = 0x4E575754;  // "TWWN" in little-endian byte order
// 3: one control wire under both links (hello, heartbeat, goodbye and its acknowledgement).
inline constexpr uint16_t kWireVersion = 3;
inline constexpr size_t kPreambleBytes = 8;  // magic u32, version u16, type u16

// Malformed or foreign wire data: the message names what is wrong with it.
class WireError : public TransportError {
 public:
  explicit WireError(const std::string& message, int peer = -1)
      : TransportError(ErrorKind::kProtocol, message, peer) {}
};

// Little-endian fixed-width writes into a buffer the caller sized.
class ByteWriter {
 public:
  explicit ByteWriter(uint8_t* out) : out_(out) {}
  template <typename Int>
  void put(Int value) {
    for (size_t i = 0; i < sizeof(Int); ++i) *out_++ = static_cast<uint8_t>(value >> (8 * i));
  }
  void put_bytes(const void* bytes, size_t length);
  uint8_t* position() const { return out_; }

 private:
  uint8_t* out_;
};

// Little-endian reads that check every length first; `what` names the message in errors.
class ByteReader {
 public:
  ByteReader(const void* bytes, size_t size, std::string_view what)
      : bytes_(static_cast<const uint8_t*>(bytes)), size_(size), what_(what) {}
  template <typename Int>
  Int get(std::string_view field) {
    require(sizeof(Int), field);
    Int value = 0;
    for (size_t i = 0; i < sizeof(Int); ++i) {
      value |= static_cast<Int>(Int{bytes_[offset_ + i]} << (8 * i));
    }
    offset_ += sizeof(Int);
    return value;
  }
  // The next `length` bytes, which stay owned by the caller's buffer.
  const uint8_t* get_bytes(size_t length, std::string_view field);
  size_t remaining() const { return size_ - offset_; }
  // Throws unless every byte was read.
  void expect_end() const;
  [[noreturn]] void fail(const std::string& problem) const;

 private:
  void require(size_t length, std::string_view field) const;

  const uint8_t* bytes_;
  size_t size_;
  size_t offset_ = 0;
  std::string_view what_;
};

void write_preamble(ByteWriter& out, uint16_t type);
// Reads the preamble and returns its type; throws WireError on a foreign magic or another
// protocol version.
uint16_t read_preamble(ByteReader& in);

}  // namespace torchwan::transport::core
