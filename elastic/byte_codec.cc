#include "elastic/byte_codec.h"

#include <limits>

#include "elastic/errors.h"

namespace torchwan::elastic {

void ByteWriter::put(uint64_t value, int width) {
  for (int i = 0; i < width; ++i) bytes_.push_back(static_cast<uint8_t>(value >> (8 * i)));
}

void ByteWriter::str(const std::string& value) {
  if (value.size() > std::numeric_limits<uint32_t>::max()) {
    throw WireError(WireErrorKind::kOversize, "string of " + std::to_string(value.size()) +
                                                  " bytes does not fit a u32 length");
  }
  u32(static_cast<uint32_t>(value.size()));
  bytes_.insert(bytes_.end(), value.begin(), value.end());
}

void ByteWriter::str_list(const std::vector<std::string>& values) {
  u32(static_cast<uint32_t>(values.size()));
  for (const auto& value : values) str(value);
}

void ByteReader::need(size_t n) const {
  if (n > remaining()) {
    throw WireError(WireErrorKind::kMalformedPayload,
                    "field of " + std::to_string(n) + " bytes at offset " +
                        std::to_string(offset_) + " runs past the end (" +
                        std::to_string(remaining()) + " bytes left)");
  }
}

uint64_t ByteReader::get(int width) {
  need(static_cast<size_t>(width));
  uint64_t value = 0;
  for (int i = 0; i < width; ++i) value |= uint64_t{bytes_[offset_ + i]} << (8 * i);
  offset_ += static_cast<size_t>(width);
  return value;
}

std::string ByteReader::str() {
  const uint32_t length = u32();
  need(length);
  std::string value(reinterpret_cast<const char*>(bytes_.data() + offset_), length);
  offset_ += length;
  return value;
}

uint32_t ByteReader::count(size_t min_item_bytes) {
  const uint32_t n = u32();
  if (min_item_bytes > 0 && n > remaining() / min_item_bytes) {
    throw WireError(WireErrorKind::kMalformedPayload,
                    "list announces " + std::to_string(n) + " items but only " +
                        std::to_string(remaining()) + " bytes are left");
  }
  return n;
}

std::vector<std::string> ByteReader::str_list() {
  const uint32_t n = count(4);  // every string has at least its 4-byte length
  std::vector<std::string> values;
  values.reserve(n);
  for (uint32_t i = 0; i < n; ++i) values.push_back(str());
  return values;
}

void ByteReader::expect_end() const {
  if (remaining() != 0) {
    throw WireError(WireErrorKind::kTrailingBytes,
                    std::to_string(remaining()) + " bytes left after the last field");
  }
}

}  // namespace torchwan::elastic
