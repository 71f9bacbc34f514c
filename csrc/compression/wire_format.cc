#include "csrc/compression/wire_format.h"

#include <bit>
#include <cstring>

#include "base/byte_io.h"
#include "csrc/compression/codec_table.h"

namespace torchwan::compression {

static_assert(std::endian::native == std::endian::little,
              "the wire format is little-endian and payload sections are read in place");

namespace {

// The byte reader's failures (base/byte_io.h) are CompressionErrors with its message.
class Reader : public base::ByteReader {
 public:
  using base::ByteReader::ByteReader;

 protected:
  [[noreturn]] void raise(const base::MalformedBytes& malformed) const override {
    throw CompressionError("torchwan compression: " + std::string(malformed.what()));
  }
};

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
  base::ByteWriter out(std::span<uint8_t>(destination, kHeaderSize));
  out.put(kMagic);
  out.put(kVersion);
  out.put(header.codec);
  out.put(header.flags);
  out.put<uint8_t>(0);  // reserved
  out.put(header.block_size);
  out.put<uint32_t>(0);  // the checksum, over the header with this field zero
  out.put(header.element_count);
  out.put(header.aux);
  out.put(header.payload_length);
  out.put_at(kChecksumOffset, header_checksum(destination));
}

Header parse_header(const uint8_t* bytes, size_t buffer_size) {
  if (buffer_size < kHeaderSize) {
    fail("payload truncated: " + std::to_string(buffer_size) + " bytes, the header alone needs " +
         std::to_string(kHeaderSize));
  }
  Reader in(bytes, kHeaderSize, "compressed payload header");
  if (in.get<uint32_t>("magic") != kMagic) {
    in.reject("magic", "bad magic: not a torchwan compressed payload");
  }
  const auto version = in.get<uint8_t>("version");
  if (version != kVersion) {
    in.reject("version", "unsupported format version " + std::to_string(version) +
                             " (this build reads " + std::to_string(kVersion) + ")");
  }
  // The checksum before the other fields: a corrupted header is named as such, not by the field
  // the corruption happened to hit.
  Reader checksum(bytes + kChecksumOffset, 4, "compressed payload header");
  if (checksum.get<uint32_t>("checksum") != header_checksum(bytes)) {
    fail("header checksum mismatch: header corrupted");
  }
  Header header;
  header.codec = static_cast<Codec>(in.get<uint8_t>("codec"));
  header.flags = in.get<uint8_t>("flags");
  if ((header.flags & ~kKnownFlags) != 0) {
    in.reject("flags", "unknown flag bits " + std::to_string(header.flags & ~kKnownFlags));
  }
  if ((header.flags & kFlagStochastic) != 0 && !describe(header.codec).stochastic_rounding) {
    in.reject("flags", "stochastic-rounding flag set for a codec that has no stochastic rounding");
  }
  if (in.get<uint8_t>("reserved") != 0) in.reject("reserved", "reserved header byte is not zero");
  header.block_size = in.get<uint32_t>("block size");
  (void)in.get<uint32_t>("checksum");  // checked above
  header.element_count = in.get<uint64_t>("element count");
  header.aux = in.get<uint64_t>("aux");
  header.payload_length = in.get<uint64_t>("payload length");
  const Layout layout =
      compute_layout(header.codec, header.block_size, header.element_count, header.aux);
  if (header.payload_length != layout.total_size - kHeaderSize) {
    in.reject("payload length", "payload length field " + std::to_string(header.payload_length) +
                                    " does not match the " +
                                    std::to_string(layout.total_size - kHeaderSize) +
                                    " bytes that " + codec_name(header.codec) + " needs for " +
                                    std::to_string(header.element_count) + " elements");
  }
  if (buffer_size != layout.total_size) {
    fail(std::string(buffer_size < layout.total_size ? "payload truncated" : "payload oversize") +
         ": buffer has " + std::to_string(buffer_size) + " bytes, header says " +
         std::to_string(layout.total_size));
  }
  return header;
}

}  // namespace torchwan::compression
