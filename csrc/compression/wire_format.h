// The self-describing header that starts every compressed payload, and the layout of the sections
// that follow it. Encoders (CPU and CUDA) write it; decoders validate it against the length of the
// buffer they were handed before reading anything else, so a corrupted, truncated or oversize
// payload is rejected with a CompressionError instead of being read out of bounds.
//
// Byte layout (little-endian), 40 bytes:
//    0  u32  magic "TWCP"
//    4  u8   version (1)
//    5  u8   codec (Codec)
//    6  u8   flags (bit 0: stochastic rounding was used; other bits zero)
//    7  u8   reserved, zero
//    8  u32  block_size (elements per scale; 0 for codecs without blocks)
//   12  u32  header checksum (FNV-1a of the 40 bytes with this field zero)
//   16  u64  element_count
//   24  u64  aux (top-k: number of kept elements; otherwise zero)
//   32  u64  payload_length (bytes after the header)
// docs/compression.md describes the sections of each codec. C++17 (the CUDA files include it).
#pragma once

#include <cstddef>
#include <cstdint>
#include <stdexcept>
#include <string>

#include "csrc/compression/codec_types.h"

namespace torchwan::compression {

// Thrown for every malformed payload and every invalid argument; the message names the field.
class CompressionError : public std::runtime_error {
 public:
  explicit CompressionError(const std::string& message) : std::runtime_error(message) {}
};

constexpr uint32_t kMagic = 0x50435754u;  // "TWCP" in memory order
constexpr uint8_t kVersion = 1;
constexpr size_t kHeaderSize = 40;
constexpr uint8_t kFlagStochastic = 0x01;
constexpr uint8_t kKnownFlags = kFlagStochastic;

// Bounds that keep every size computation far from overflow and every index in 32 bits.
constexpr uint32_t kMinBlockSize = 32;
constexpr uint32_t kMaxBlockSize = uint32_t{1} << 20;
constexpr uint64_t kMaxElements = uint64_t{1} << 32;  // top-k indices are u32

struct Header {
  Codec codec = Codec::kFloat16;
  uint8_t flags = 0;
  uint32_t block_size = 0;
  uint64_t element_count = 0;
  uint64_t aux = 0;
  uint64_t payload_length = 0;
};

// Where each section of a payload starts, in bytes from the start of the payload (header
// included), and how long it is. Computed from a validated header only.
struct Layout {
  size_t block_count = 0;
  size_t scales_offset = 0;   // float per block (block codecs)
  size_t data_offset = 0;     // codes: u16 / i8 / u8 per element, or sign bit words
  size_t indices_offset = 0;  // top-k: u32 per kept element, ascending
  size_t values_offset = 0;   // top-k: float per kept element
  size_t total_size = 0;      // header + payload
};

// Codec parameters as they appear in a header (block size resolved, top-k count computed).
struct ResolvedParams {
  Codec codec;
  uint32_t block_size;
  uint64_t aux;
  bool stochastic;
};

// Validates the parameters (block size a power of two in range, element count in range, known
// codec) and computes the layout. Throws CompressionError.
Layout compute_layout(Codec codec, uint32_t block_size, uint64_t element_count, uint64_t aux);

void write_header(const Header& header, uint8_t* destination);

// Parses and validates the header of a payload of `buffer_size` bytes against that length: every
// field, the checksum, and that payload_length is exactly what the codec needs and exactly fills
// the buffer. Reads only the first min(buffer_size, kHeaderSize) bytes at `header_bytes` (for a
// device payload: a host copy of its header).
Header parse_header(const uint8_t* header_bytes, size_t buffer_size);

uint32_t header_checksum(const uint8_t* header);

}  // namespace torchwan::compression
