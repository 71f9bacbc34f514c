// The one byte codec every wire format and record of the project is written with: little-endian
// fixed-width fields, raw bytes and u32-length-prefixed strings. ByteWriter appends to a buffer it
// grows, or fills a buffer the caller sized; ByteReader checks every length against the bytes left
// before it touches them, so hostile input can neither read out of bounds nor make a decoder
// allocate more than the input itself holds.
//
// One failure style: every problem a reader finds is a MalformedBytes naming what was being read
// (the reader's `what`, e.g. "control message"), the field, its offset and what was wrong:
//   malformed control message: truncated at goodbye reason (offset 14: needs 200 bytes, 2 left)
// A layer that reports wire errors with a type of its own (transport's WireError, elastic's
// WireError, compression's CompressionError) derives its reader and overrides raise() to throw
// that type with the same message.
#pragma once

#include <bit>
#include <cstddef>
#include <cstdint>
#include <span>
#include <stdexcept>
#include <string>
#include <string_view>
#include <type_traits>
#include <vector>

namespace torchwan::base {

static_assert(std::endian::native == std::endian::little || std::endian::native == std::endian::big,
              "mixed-endian machines are not supported");

class MalformedBytes : public std::runtime_error {
 public:
  enum class Problem {
    kTruncated,  // a field runs past the end of the input
    kTrailing,   // bytes left after the last field
    kTooLong,    // a length or count above its limit
    kInvalid,    // a field holds an impossible value (the decoder's own checks)
  };

  // `message` is the whole text; `field` (empty for a problem of the whole input) and `offset`
  // say where the problem lies.
  MalformedBytes(Problem problem, std::string_view field, size_t offset, const std::string& message)
      : std::runtime_error(message), problem_(problem), field_(field), offset_(offset) {}

  Problem problem() const { return problem_; }
  const std::string& field() const { return field_; }
  size_t offset() const { return offset_; }

 private:
  Problem problem_;
  std::string field_;
  size_t offset_;
};

namespace byte_io_detail {

// The unsigned integer a field of type T travels as.
template <typename T>
struct Wire {
  static_assert(std::is_arithmetic_v<T> || std::is_enum_v<T>, "only numbers go on the wire");
  using type = std::make_unsigned_t<std::conditional_t<
      std::is_same_v<T, bool>, uint8_t,
      std::conditional_t<std::is_same_v<T, float>, uint32_t,
                         std::conditional_t<std::is_same_v<T, double>, uint64_t, T>>>>;
};
template <typename T>
requires std::is_enum_v<T>
struct Wire<T> {
  using type = std::make_unsigned_t<std::underlying_type_t<T>>;
};

template <typename T>
typename Wire<T>::type to_wire(T value) {
  using Unsigned = typename Wire<T>::type;
  if constexpr (std::is_floating_point_v<T>) {
    return std::bit_cast<Unsigned>(value);
  } else {
    return static_cast<Unsigned>(value);
  }
}

template <typename T>
T from_wire(typename Wire<T>::type bits) {
  if constexpr (std::is_floating_point_v<T>) {
    return std::bit_cast<T>(bits);
  } else if constexpr (std::is_same_v<T, bool>) {
    return bits != 0;
  } else {
    return static_cast<T>(bits);
  }
}

}  // namespace byte_io_detail

class ByteWriter {
 public:
  // Appends to a buffer of its own, grown as needed.
  ByteWriter() = default;
  // Fills `fixed` from its start; writing past its end is a programming error (std::length_error).
  explicit ByteWriter(std::span<uint8_t> fixed)
      : data_(fixed.data()), capacity_(fixed.size()), fixed_(true) {}
  ByteWriter(const ByteWriter&) = delete;
  ByteWriter& operator=(const ByteWriter&) = delete;

  // Integers, enums (as their underlying type), bool (one byte), float and double (IEEE bits).
  template <typename T>
  void put(T value) {
    auto bits = byte_io_detail::to_wire(value);
    uint8_t* out = claim(sizeof(bits));
    for (size_t i = 0; i < sizeof(bits); ++i) {
      out[i] = static_cast<uint8_t>(bits >> (8 * i));  // NOLINT: sizeof(bits) == 1 shifts by 0
    }
  }
  void put_bytes(const void* bytes, size_t length);
  void put_bytes(std::span<const uint8_t> bytes) { put_bytes(bytes.data(), bytes.size()); }
  void put_zeros(size_t length);
  // A u32 length, then the bytes; a string longer than 4 GiB is a programming error.
  void put_string(std::string_view value);
  // Overwrites a field written earlier at `offset` (a checksum or a length known only later).
  template <typename T>
  void put_at(size_t offset, T value) {
    auto bits = byte_io_detail::to_wire(value);
    if (offset > size_ || size_ - offset < sizeof(bits)) overflow(offset, sizeof(bits));
    for (size_t i = 0; i < sizeof(bits); ++i) {
      data_[offset + i] = static_cast<uint8_t>(bits >> (8 * i));
    }
  }

  size_t size() const { return size_; }
  std::span<const uint8_t> bytes() const { return {data_, size_}; }
  // The written bytes (the writer's own buffer; empty for a fixed one), leaving the writer empty.
  std::vector<uint8_t> take();

 private:
  uint8_t* claim(size_t length) {
    if (capacity_ - size_ < length) grow(length);
    uint8_t* out = data_ + size_;
    size_ += length;
    return out;
  }
  void grow(size_t length);
  [[noreturn]] void overflow(size_t offset, size_t length) const;

  std::vector<uint8_t> owned_;
  uint8_t* data_ = nullptr;
  size_t capacity_ = 0;
  size_t size_ = 0;
  bool fixed_ = false;
};

class ByteReader {
 public:
  // `what` names the input in errors ("control message"); it must outlive the reader.
  ByteReader(std::span<const uint8_t> bytes, std::string_view what)
      : bytes_(bytes.data()), size_(bytes.size()), what_(what) {}
  ByteReader(const void* bytes, size_t size, std::string_view what)
      : bytes_(static_cast<const uint8_t*>(bytes)), size_(size), what_(what) {}
  virtual ~ByteReader() = default;

  template <typename T>
  T get(std::string_view field) {
    using Unsigned = typename byte_io_detail::Wire<T>::type;
    require(sizeof(Unsigned), field);
    Unsigned bits = 0;
    for (size_t i = 0; i < sizeof(Unsigned); ++i) {
      bits = static_cast<Unsigned>(bits |
                                   static_cast<Unsigned>(Unsigned{bytes_[offset_ + i]} << (8 * i)));
    }
    offset_ += sizeof(Unsigned);
    return byte_io_detail::from_wire<T>(bits);
  }
  // The next `length` bytes, a view into the caller's buffer.
  std::span<const uint8_t> get_bytes(size_t length, std::string_view field);
  // A u32 length, then that many bytes; a length above `max_length` is refused before anything is
  // allocated.
  std::string get_string(std::string_view field, size_t max_length);
  // A u32 count of items that take at least `min_item_bytes` each: refused when the bytes left
  // could not hold that many, so a count never makes a decoder reserve more than the input holds.
  uint32_t get_count(std::string_view field, size_t min_item_bytes);

  size_t offset() const { return offset_; }
  size_t size() const { return size_; }
  size_t remaining() const { return size_ - offset_; }
  // Throws unless every byte was read.
  void expect_end() const;

  // A value the caller read is impossible: names `field` at the offset where the last read began
  // (call it right after reading the field).
  [[noreturn]] void reject(std::string_view field, const std::string& problem) const;
  // Something is wrong with the input as a whole ("255 bytes, expected 256").
  [[noreturn]] void fail(const std::string& problem) const;

 protected:
  // Every failure ends here. Throws `malformed`; a layer's reader overrides this to throw its own
  // error type carrying the same message. Must not return.
  [[noreturn]] virtual void raise(const MalformedBytes& malformed) const;

 private:
  void require(size_t length, std::string_view field) {
    if (size_ - offset_ < length) truncated(length, field);
    field_offset_ = offset_;
  }
  [[noreturn]] void truncated(size_t length, std::string_view field) const;
  // "malformed <what>: [<field> at offset <offset>: ]<detail>", passed to raise().
  [[noreturn]] void report(MalformedBytes::Problem problem, std::string_view field, size_t offset,
                           const std::string& detail, bool name_field = true) const;

  const uint8_t* bytes_;
  size_t size_;
  size_t offset_ = 0;
  size_t field_offset_ = 0;  // where the last read began
  std::string_view what_;
};

}  // namespace torchwan::base
