#include "csrc/compression/wire_format.h"

#include <bit>
#include <cstring>

#include "csrc/compression/codec_table.h"

namespace torchwan::compression {

static_assert(std::endian::native == std::endian::little,
              "the wire format is little-endian and payload sections are read in place");

namespace {

void put_u32(uint8_t* destination, uint32_t value) { std::memcpy(destination, &value, 4); }
void put_u64(uint8_t* destination, uint64_t value) { std::memcpy(destination, &value, 8); }
uint32_t get_u32(const uint8_t* source) {
  uint32_t value;
  std::memcpy(&value, source, 4);
  return value;
}
uint64_t get_u64(const uint8_t* source) {
  uint64_t value;
  std::memcpy(&value, source, 8);
  return value;
}

constexpr size_t kChecksumOffset = 12;

[[noreturn]] void fail(const std::string& what) {
  throw CompressionError("torchwan compression: " + what);
}

}  // namespace

uint32_t header_checksum(const uint8_t* header) {
  uint32_t hash = 0x811C9DC5u;  // FNV-1a: cheap, and any single corrupted byte changes it
  for (size_t i = 0; i < kHeaderSize; ++i) {
    const bool in_checksum_field = i >= kChecksumOffset && i < kChecksumOffset + 4;
    hash = (hash ^ (in_checksum_field ? 0u : header[i])) * 0x01000193u;
  }
  return hash;
}

Layout compute_layout(Codec codec, uint32_t block_size, uint64_t element_count, uint64_t aux) {
  const CodecDescriptor& descriptor = describe(codec);
  if (element_count > kMaxElements) {
    fail("element count " + std::to_string(element_count) + " exceeds the limit of " +
         std::to_string(kMaxElements));
  }
  const size_t n = static_cast<size_t>(element_count);
  if (descriptor.blocked()) {
    const bool power_of_two = (block_size & (block_size - 1)) == 0;
    if (block_size < kMinBlockSize || block_size > kMaxBlockSize || !power_of_two) {
      fail("block size " + std::to_string(block_size) + " is not a power of two in [" +
           std::to_string(kMinBlockSize) + ", " + std::to_string(kMaxBlockSize) + "]");
    }
  } else if (block_size != 0) {
    fail("block size must be zero for " + std::string(descriptor.name) + ", got " +
         std::to_string(block_size));
  }
  Layout layout;
  if (descriptor.sections == Sections::kSparse) {
    const bool valid_k = n == 0 ? aux == 0 : (aux >= 1 && aux <= element_count);
    if (!valid_k) {
      fail("top-k count " + std::to_string(aux) + " is invalid for " + std::to_string(n) +
           " elements");
    }
    const size_t k = static_cast<size_t>(aux);
    layout.indices_offset = kHeaderSize;
    layout.values_offset = kHeaderSize + 4 * k;
    layout.total_size = kHeaderSize + 8 * k;
    return layout;
  }
  if (aux != 0) fail("aux field must be zero for " + std::string(descriptor.name));
  layout.data_offset = kHeaderSize;
  if (descriptor.blocked()) {
    layout.block_count = (n + block_size - 1) / block_size;
    layout.scales_offset = kHeaderSize;
    layout.data_offset = kHeaderSize + 4 * layout.block_count;
  }
  // Codes narrower than a byte are packed into little-endian u32 words.
  const size_t data_bytes = descriptor.code_bits >= 8 ? n * (descriptor.code_bits / 8)
                                                      : 4 * ((n * descriptor.code_bits + 31) / 32);
  layout.total_size = layout.data_offset + data_bytes;
  return layout;
}

void write_header(const Header& header, uint8_t* destination) {
  std::memset(destination, 0, kHeaderSize);
  put_u32(destination, kMagic);
  destination[4] = kVersion;
  destination[5] = static_cast<uint8_t>(header.codec);
  destination[6] = header.flags;
  put_u32(destination + 8, header.block_size);
  put_u64(destination + 16, header.element_count);
  put_u64(destination + 24, header.aux);
  put_u64(destination + 32, header.payload_length);
  put_u32(destination + kChecksumOffset, header_checksum(destination));
}

Header parse_header(const uint8_t* bytes, size_t buffer_size) {
  if (buffer_size < kHeaderSize) {
    fail("payload truncated: " + std::to_string(buffer_size) + " bytes, the header alone needs " +
         std::to_string(kHeaderSize));
  }
  if (get_u32(bytes) != kMagic) fail("bad magic: not a torchwan compressed payload");
  if (bytes[4] != kVersion) {
    fail("unsupported format version " + std::to_string(bytes[4]) + " (this build reads " +
         std::to_string(kVersion) + ")");
  }
  const uint32_t stored_checksum = get_u32(bytes + kChecksumOffset);
  if (stored_checksum != header_checksum(bytes)) fail("header checksum mismatch: header corrupted");
  Header header;
  header.codec = static_cast<Codec>(bytes[5]);
  header.flags = bytes[6];
  if ((header.flags & ~kKnownFlags) != 0) {
    fail("unknown flag bits " + std::to_string(header.flags & ~kKnownFlags) + " in header");
  }
  if ((header.flags & kFlagStochastic) != 0 && !describe(header.codec).stochastic_rounding) {
    fail("stochastic-rounding flag set for a codec that has no stochastic rounding");
  }
  if (bytes[7] != 0) fail("reserved header byte is not zero");
  header.block_size = get_u32(bytes + 8);
  header.element_count = get_u64(bytes + 16);
  header.aux = get_u64(bytes + 24);
  header.payload_length = get_u64(bytes + 32);
  const Layout layout =
      compute_layout(header.codec, header.block_size, header.element_count, header.aux);
  if (header.payload_length != layout.total_size - kHeaderSize) {
    fail("payload length field " + std::to_string(header.payload_length) + " does not match the " +
         std::to_string(layout.total_size - kHeaderSize) + " bytes that " +
         codec_name(header.codec) + " needs for " + std::to_string(header.element_count) +
         " elements");
  }
  if (buffer_size != layout.total_size) {
    fail(std::string(buffer_size < layout.total_size ? "payload truncated" : "payload oversize") +
         ": buffer has " + std::to_string(buffer_size) + " bytes, header says " +
         std::to_string(layout.total_size));
  }
  return header;
}

}  // namespace torchwan::compression
