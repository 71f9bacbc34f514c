// base/byte_io.h ByteReader on its own: the input is both the script (which field kind to read
// next) and the bytes read, so every sequence of reads meets hostile lengths and counts. Every
// failure must be a MalformedBytes; nothing may read out of bounds or allocate what the input
// does not hold.
#include <cstddef>
#include <cstdint>
#include <span>
#include <string>

#include "base/byte_io.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using torchwan::base::ByteReader;
  if (size < 2) return 0;
  // The first byte says how many script bytes follow; the reader gets the rest.
  const size_t script_length = std::min<size_t>(data[0], size - 1);
  const std::span<const uint8_t> script(data + 1, script_length);
  ByteReader reader(std::span<const uint8_t>(data + 1 + script_length, size - 1 - script_length),
                    "fuzz input");
  try {
    for (const uint8_t op : script) {
      switch (op % 8) {
        case 0:
          reader.get<uint8_t>("u8");
          break;
        case 1:
          reader.get<uint16_t>("u16");
          break;
        case 2:
          reader.get<uint32_t>("u32");
          break;
        case 3:
          reader.get<double>("f64");
          break;
        case 4:
          reader.get_string("string", size_t{1} << 20);
          break;
        case 5:
          for (uint32_t n = reader.get_count("list", 4); n > 0; --n) {
            reader.get_string("list item", size_t{1} << 20);
          }
          break;
        case 6:
          reader.get_count("count", op / 8 + 1);
          break;
        default:
          reader.expect_end();
          break;
      }
    }
  } catch (const torchwan::base::MalformedBytes&) {
  }
  return 0;
}
