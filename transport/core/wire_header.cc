#include "transport/core/wire_header.h"

#include <fmt/format.h>

namespace torchwan::transport::core {

void ByteReader::raise(const base::MalformedBytes& malformed) const {
  throw WireError(malformed.what());
}

void write_preamble(ByteWriter& out, uint16_t type) {
  out.put<uint32_t>(kWireMagic);
  out.put<uint16_t>(kWireVersion);
  out.put<uint16_t>(type);
}

uint16_t read_preamble(ByteReader& in) {
  const auto magic = in.get<uint32_t>("magic");
  if (magic != kWireMagic) {
    in.reject("magic", fmt::format("bad magic {:#x} (not a torchwan peer?)", magic));
  }
  const auto version = in.get<uint16_t>("version");
  if (version != kWireVersion) {
    in.reject("version", fmt::format("protocol version {}, this build speaks {} (mixed torchwan "
                                     "versions?)",
                                     version, kWireVersion));
  }
  return in.get<uint16_t>("type");
}

}  // namespace torchwan::transport::core
