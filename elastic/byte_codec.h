// Explicit little-endian encoding of the few field kinds membership payloads use: fixed-width
// unsigned integers, length-prefixed strings and count-prefixed lists. The reader checks every
// length against the bytes left before it touches them, so a hostile length can neither read out of
// bounds nor make us allocate more than the frame itself holds.
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>
#include <string>
#include <vector>

namespace torchwan::elastic {

class ByteWriter {
 public:
  void u8(uint8_t value) { bytes_.push_back(value); }
  void u16(uint16_t value) { put(value, 2); }
  void u32(uint32_t value) { put(value, 4); }
  void u64(uint64_t value) { put(value, 8); }
  // u32 length, then the bytes.
  void str(const std::string& value);
  // u32 count, then each string.
  void str_list(const std::vector<std::string>& values);

  const std::vector<uint8_t>& bytes() const { return bytes_; }
  std::vector<uint8_t> take() { return std::move(bytes_); }

 private:
  void put(uint64_t value, int width);
  std::vector<uint8_t> bytes_;
};

// Throws WireError(kMalformedPayload) on any read past the end.
class ByteReader {
 public:
  explicit ByteReader(std::span<const uint8_t> bytes) : bytes_(bytes) {}

  uint8_t u8() { return static_cast<uint8_t>(get(1)); }
  uint16_t u16() { return static_cast<uint16_t>(get(2)); }
  uint32_t u32() { return static_cast<uint32_t>(get(4)); }
  uint64_t u64() { return get(8); }
  std::string str();
  std::vector<std::string> str_list();
  // A list count, refused when `count * min_item_bytes` exceeds what is left: a list can never
  // announce more items than its remaining bytes could hold.
  uint32_t count(size_t min_item_bytes);

  size_t remaining() const { return bytes_.size() - offset_; }
  // Throws WireError(kTrailingBytes) unless everything was consumed.
  void expect_end() const;

 private:
  uint64_t get(int width);
  void need(size_t n) const;
  std::span<const uint8_t> bytes_;
  size_t offset_ = 0;
};

}  // namespace torchwan::elastic
