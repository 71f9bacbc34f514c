#include "transport/core/wire_header.h"

#include <cstdio>
#include <cstring>

namespace torchwan::transport::core {

namespace {

std::string hex(uint64_t value) {
  char text[24];
  std::snprintf(text, sizeof(text), "0x%llx", static_cast<unsigned long long>(value));
  return text;
}

}  // namespace

void ByteWriter::put_bytes(const void* bytes, size_t length) {
  if (length != 0) std::memcpy(out_, bytes, length);
  out_ += length;
}

const uint8_t* ByteReader::get_bytes(size_t length, std::string_view field) {
  require(length, field);
  const uint8_t* start = bytes_ + offset_;
  offset_ += length;
  return start;
}

void ByteReader::expect_end() const {
  if (offset_ != size_) {
    fail(std::to_string(size_ - offset_) + " trailing bytes after " + std::to_string(offset_));
  }
}

void ByteReader::fail(const std::string& problem) const {
  throw WireError("malformed " + std::string(what_) + ": " + problem);
}

void ByteReader::require(size_t length, std::string_view field) const {
  if (size_ - offset_ < length) {
    fail("truncated at " + std::string(field) + " (" + std::to_string(size_) + " bytes)");
  }
}

void write_preamble(ByteWriter& out, uint16_t type) {
  out.put<uint32_t>(kWireMagic);
  out.put<uint16_t>(kWireVersion);
  out.put<uint16_t>(type);
}

uint16_t read_preamble(ByteReader& in) {
  const auto magic = in.get<uint32_t>("magic");
  if (magic != kWireMagic) in.fail("bad magic " + hex(magic) + " (not a torchwan peer?)");
  const auto version = in.get<uint16_t>("version");
  if (version != kWireVersion) {
    in.fail("protocol version " + std::to_string(version) + ", this build speaks " +
            std::to_string(kWireVersion) + " (mixed torchwan versions?)");
  }
  return in.get<uint16_t>("type");
}

}  // namespace torchwan::transport::core
