// base/byte_io.h ByteReader on its own: the input is both the script (which field kind to read
// next) and the bytes read, so every sequence of reads meets hostile lengths and counts. Every
// failure must be a MalformedBytes; nothing may read out of bounds or allocate what the input
// does not hold.
#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <iterator>
#include <span>
#include <string>

#include "base/byte_io.h"

namespace {

using torchwan::base::ByteReader;

constexpr size_t kMaxString = size_t{1} << 20;

// One read per script byte, picked by its value modulo the number of reads.
using Read = void (*)(ByteReader& in, uint8_t op);
constexpr Read kReads[] = {
    [](ByteReader& in, uint8_t) { in.get<uint8_t>("u8"); },
    [](ByteReader& in, uint8_t) { in.get<uint16_t>("u16"); },
    [](ByteReader& in, uint8_t) { in.get<uint32_t>("u32"); },
    [](ByteReader& in, uint8_t) { in.get<double>("f64"); },
    [](ByteReader& in, uint8_t) { in.get_string("string", kMaxString); },
    [](ByteReader& in, uint8_t) {
      for (uint32_t n = in.get_count("list", 4); n > 0; --n) in.get_string("item", kMaxString);
    },
    [](ByteReader& in, uint8_t op) { in.get_count("count", op / 8 + 1); },
    [](ByteReader& in, uint8_t) { in.expect_end(); },
};

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size < 2) return 0;
  // The first byte says how many script bytes follow; the reader gets the rest.
  const size_t script_length = std::min<size_t>(data[0], size - 1);
  const std::span<const uint8_t> script(data + 1, script_length);
  ByteReader reader(std::span<const uint8_t>(data + 1 + script_length, size - 1 - script_length),
                    "fuzz input");
  try {
    for (const uint8_t op : script) kReads[op % std::size(kReads)](reader, op);
  } catch (const torchwan::base::MalformedBytes&) {
  }
  return 0;
}
