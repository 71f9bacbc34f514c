// elastic/byte_codec.h ByteReader on its own: the input is both the script (which field kind to
// read next) and the bytes read, so every sequence of reads meets hostile lengths and counts.
#include <cstddef>
#include <cstdint>
#include <span>

#include "elastic/byte_codec.h"
#include "elastic/errors.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace torchwan::elastic;
  if (size < 2) return 0;
  // The first byte says how many script bytes follow; the reader gets the rest.
  const size_t script_length = std::min<size_t>(data[0], size - 1);
  const std::span<const uint8_t> script(data + 1, script_length);
  ByteReader reader(std::span<const uint8_t>(data + 1 + script_length, size - 1 - script_length));
  try {
    for (const uint8_t op : script) {
      switch (op % 8) {
        case 0:
          reader.u8();
          break;
        case 1:
          reader.u16();
          break;
        case 2:
          reader.u32();
          break;
        case 3:
          reader.u64();
          break;
        case 4:
          reader.str();
          break;
        case 5:
          reader.str_list();
          break;
        case 6:
          reader.count(op / 8 + 1);
          break;
        default:
          reader.expect_end();
          break;
      }
    }
  } catch (const WireError&) {
  }
  return 0;
}
