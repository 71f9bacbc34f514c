// Compression payload header (csrc/compression/wire_format.h): parse_header validates a header
// against the length of the buffer it came in; malformed input must end in CompressionError.
#include <cstddef>
#include <cstdint>

#include "csrc/compression/wire_format.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace torchwan::compression;
  try {
    const Header header = parse_header(data, size);
    // A header that passed must describe a layout that fits the buffer exactly.
    const Layout layout =
        compute_layout(header.codec, header.block_size, header.element_count, header.aux);
    if (layout.total_size != size) __builtin_trap();
  } catch (const CompressionError&) {
  }
  return 0;
}
