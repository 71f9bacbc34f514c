#include "transport/ucx/ucx_wire.h"

#include "transport/core/wire_header.h"

namespace torchwan::transport::ucx {

namespace {

// Little-endian fixed-width fields; every machine we target is little-endian, and the magic
// catches the one that is not.
void put_u32(std::vector<uint8_t>& out, uint32_t value) {
  for (int shift = 0; shift < 32; shift += 8) out.push_back(static_cast<uint8_t>(value >> shift));
}

void put_u64(std::vector<uint8_t>& out, uint64_t value) {
  put_u32(out, static_cast<uint32_t>(value));
  put_u32(out, static_cast<uint32_t>(value >> 32));
}

class Reader {
 public:
  explicit Reader(const std::vector<uint8_t>& bytes) : bytes_(bytes) {}
  bool u32(uint32_t& value) {
    if (bytes_.size() - offset_ < 4) return false;
    value = 0;
    for (int i = 0; i < 4; ++i) value |= static_cast<uint32_t>(bytes_[offset_ + i]) << (8 * i);
    offset_ += 4;
    return true;
  }
  bool u64(uint64_t& value) {
    uint32_t low = 0, high = 0;
    if (!u32(low) || !u32(high)) return false;
    value = (static_cast<uint64_t>(high) << 32) | low;
    return true;
  }
  bool bytes(size_t length, std::vector<uint8_t>& out) {
    if (bytes_.size() - offset_ < length) return false;
    out.assign(bytes_.begin() + static_cast<std::ptrdiff_t>(offset_),
               bytes_.begin() + static_cast<std::ptrdiff_t>(offset_ + length));
    offset_ += length;
    return true;
  }
  bool at_end() const { return offset_ == bytes_.size(); }

 private:
  const std::vector<uint8_t>& bytes_;
  size_t offset_ = 0;
};

// A worker address of tcp is well under 1 KiB; anything huge is garbage.
constexpr uint32_t kMaxAddressBytes = 1 << 20;
constexpr uint32_t kMaxLanes = 1024;

}  // namespace

std::string address_key(int rank) { return "tw/ucx/" + std::to_string(rank); }

std::vector<uint8_t> encode_address_record(const AddressRecord& record) {
  std::vector<uint8_t> out;
  put_u32(out, kAddressRecordMagic);
  put_u32(out, core::kWireVersion);
  put_u32(out, static_cast<uint32_t>(record.rank));
  put_u64(out, record.stripe_min_bytes);
  put_u64(out, record.chunk_bytes);
  put_u32(out, static_cast<uint32_t>(record.lane_addresses.size()));
  for (const auto& address : record.lane_addresses) {
    put_u32(out, static_cast<uint32_t>(address.size()));
    out.insert(out.end(), address.begin(), address.end());
  }
  return out;
}

std::optional<AddressRecord> decode_address_record(const std::vector<uint8_t>& bytes,
                                                   std::string& why) {
  Reader reader(bytes);
  uint32_t magic = 0, version = 0, rank = 0, lanes = 0;
  if (!reader.u32(magic) || magic != kAddressRecordMagic) {
    why = "not a torchwan ucx address record (bad magic)";
    return std::nullopt;
  }
  if (!reader.u32(version) || version != core::kWireVersion) {
    why = "address record version " + std::to_string(version) + ", expected " +
          std::to_string(core::kWireVersion) + " (mixed torchwan versions?)";
    return std::nullopt;
  }
  AddressRecord record;
  if (!reader.u32(rank) || !reader.u64(record.stripe_min_bytes) ||
      !reader.u64(record.chunk_bytes) || !reader.u32(lanes) || lanes == 0 || lanes > kMaxLanes) {
    why = "truncated address record or bad lane count";
    return std::nullopt;
  }
  record.rank = static_cast<int>(rank);
  record.lane_addresses.resize(lanes);
  for (auto& address : record.lane_addresses) {
    uint32_t length = 0;
    if (!reader.u32(length) || length == 0 || length > kMaxAddressBytes ||
        !reader.bytes(length, address)) {
      why = "truncated worker address in address record";
      return std::nullopt;
    }
  }
  if (!reader.at_end()) {
    why = "trailing bytes after address record";
    return std::nullopt;
  }
  return record;
}

}  // namespace torchwan::transport::ucx
