// Compression decoders (csrc/compression/codec.h): decode and decode_accumulate of an arbitrary
// payload, every codec. A malformed payload must end in CompressionError, never in a read past the
// buffer.
#include <cstddef>
#include <cstdint>
#include <span>
#include <vector>

#include "csrc/compression/codec.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace torchwan::compression;
  const std::span<const uint8_t> payload(data, size);
  try {
    const Header header = inspect(payload);
    // Top-k payloads may announce up to 2^32 elements with a handful kept; the output buffer is the
    // caller's, so bound it here to keep the harness's own memory small.
    if (header.element_count > (size_t{1} << 20)) return 0;
    std::vector<float> output(header.element_count);
    decode(payload, output);
    std::vector<float> accumulator(header.element_count, 1.0f);
    decode_accumulate(payload, accumulator);
  } catch (const CompressionError&) {
  }
  return 0;
}
