// The start every header on the data-plane wire shares, whichever link carries it: magic, protocol
// version and message type, little-endian. The control wire (control_wire.h) and the ZeroMQ
// link's piece header both begin with it, so a foreign or mismatched peer is named the same way
// everywhere. Decoders throw WireError naming what is malformed; nothing is read out of bounds.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>

#include "base/byte_io.h"
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

// The one byte codec (base/byte_io.h). The transport's reader reports what base::ByteReader finds
// as a WireError (kind kProtocol) with the same message, e.g. "malformed control message: magic at
// offset 0: bad magic 0x1234 (not a torchwan peer?)".
using ByteWriter = base::ByteWriter;
class ByteReader : public base::ByteReader {
 public:
  using base::ByteReader::ByteReader;

 protected:
  [[noreturn]] void raise(const base::MalformedBytes& malformed) const override;
};

void write_preamble(ByteWriter& out, uint16_t type);
// Reads the preamble and returns its type; throws WireError on a foreign magic or another
// protocol version.
uint16_t read_preamble(ByteReader& in);

}  // namespace torchwan::transport::core
