#include "base/byte_io.h"

#include <algorithm>
#include <cstring>
#include <limits>

namespace torchwan::base {

// ---- ByteWriter ----

void ByteWriter::put_bytes(const void* bytes, size_t length) {
  if (length == 0) return;
  std::memcpy(claim(length), bytes, length);
}

void ByteWriter::put_zeros(size_t length) {
  if (length == 0) return;
  std::memset(claim(length), 0, length);
}

void ByteWriter::put_string(std::string_view value) {
  if (value.size() > std::numeric_limits<uint32_t>::max()) {
    throw std::length_error("ByteWriter: a string of " + std::to_string(value.size()) +
                            " bytes does not fit a u32 length");
  }
  put(static_cast<uint32_t>(value.size()));
  put_bytes(value.data(), value.size());
}

std::vector<uint8_t> ByteWriter::take() {
  std::vector<uint8_t> bytes;
  if (!fixed_) {
    owned_.resize(size_);
    bytes = std::move(owned_);
    owned_.clear();
    data_ = nullptr;
    capacity_ = 0;
    size_ = 0;
  }
  return bytes;
}

void ByteWriter::grow(size_t length) {
  if (fixed_) overflow(size_, length);
  owned_.resize(std::max({size_t{64}, 2 * capacity_, size_ + length}));
  data_ = owned_.data();
  capacity_ = owned_.size();
}

void ByteWriter::overflow(size_t offset, size_t length) const {
  throw std::length_error("ByteWriter: " + std::to_string(length) + " bytes at offset " +
                          std::to_string(offset) + " do not fit the " + std::to_string(size_) +
                          "-byte " + (fixed_ ? "buffer" : "output") + " (of " +
                          std::to_string(capacity_) + " bytes)");
}

// ---- ByteReader ----

std::span<const uint8_t> ByteReader::get_bytes(size_t length, std::string_view field) {
  require(length, field);
  const std::span<const uint8_t> bytes(bytes_ + offset_, length);
  offset_ += length;
  return bytes;
}

std::string ByteReader::get_string(std::string_view field, size_t max_length) {
  const auto length = get<uint32_t>(field);
  if (length > max_length) {
    report(MalformedBytes::Problem::kTooLong, field, field_offset_,
           "length " + std::to_string(length) + " exceeds the limit of " +
               std::to_string(max_length) + " bytes");
  }
  const auto bytes = get_bytes(length, field);
  return {reinterpret_cast<const char*>(bytes.data()), bytes.size()};
}

uint32_t ByteReader::get_count(std::string_view field, size_t min_item_bytes) {
  const auto count = get<uint32_t>(field);
  if (min_item_bytes > 0 && count > remaining() / min_item_bytes) {
    report(MalformedBytes::Problem::kTooLong, field, field_offset_,
           "announces " + std::to_string(count) + " items of at least " +
               std::to_string(min_item_bytes) + " bytes but only " + std::to_string(remaining()) +
               " bytes are left");
  }
  return count;
}

void ByteReader::expect_end() const {
  if (offset_ != size_) {
    report(MalformedBytes::Problem::kTrailing, {}, offset_,
           std::to_string(size_ - offset_) + " trailing bytes after offset " +
               std::to_string(offset_));
  }
}

void ByteReader::reject(std::string_view field, const std::string& problem) const {
  report(MalformedBytes::Problem::kInvalid, field, field_offset_, problem);
}

void ByteReader::fail(const std::string& problem) const {
  report(MalformedBytes::Problem::kInvalid, {}, offset_, problem);
}

void ByteReader::raise(const MalformedBytes& malformed) const { throw malformed; }

void ByteReader::truncated(size_t length, std::string_view field) const {
  report(MalformedBytes::Problem::kTruncated, field, offset_,
         "truncated at " + std::string(field) + " (offset " + std::to_string(offset_) + ": needs " +
             std::to_string(length) + " bytes, " + std::to_string(size_ - offset_) + " left)",
         /*name_field=*/false);
}

void ByteReader::report(MalformedBytes::Problem problem, std::string_view field, size_t offset,
                        const std::string& detail, bool name_field) const {
  std::string message = "malformed " + std::string(what_) + ": ";
  if (name_field && !field.empty()) {
    message += std::string(field) + " at offset " + std::to_string(offset) + ": ";
  }
  const MalformedBytes malformed(problem, field, offset, message + detail);
  raise(malformed);
  throw malformed;  // only if an override of raise() returned, which it must not
}

}  // namespace torchwan::base
