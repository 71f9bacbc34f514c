#include "transport/ucx/ucx_wire.h"

#include <algorithm>

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
  put_u32(out, kWireMagic);
  put_u32(out, kWireVersion);
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
  if (!reader.u32(magic) || magic != kWireMagic) {
    why = "not a torchwan ucx address record (bad magic)";
    return std::nullopt;
  }
  if (!reader.u32(version) || version != kWireVersion) {
    why = "address record version " + std::to_string(version) + ", expected " +
          std::to_string(kWireVersion) + " (mixed torchwan versions?)";
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

std::vector<uint8_t> encode_hello(const Hello& hello) {
  std::vector<uint8_t> out;
  for (uint32_t field : {hello.magic, hello.version, hello.rank, hello.size, hello.lane}) {
    put_u32(out, field);
  }
  out.insert(out.end(), hello.proof.begin(), hello.proof.end());
  return out;
}

Hello decode_hello(const std::vector<uint8_t>& bytes) {
  Hello hello;
  if (bytes.size() != kHelloBytes) {
    hello.magic = 0;
    return hello;
  }
  Reader reader(bytes);
  reader.u32(hello.magic);
  reader.u32(hello.version);
  reader.u32(hello.rank);
  reader.u32(hello.size);
  reader.u32(hello.lane);
  std::vector<uint8_t> proof;
  reader.bytes(security::kProofBytes, proof);
  std::copy(proof.begin(), proof.end(), hello.proof.begin());
  return hello;
}

std::string check_hello(const Hello& hello, int peer, int size, int lane) {
  if (hello.magic != kWireMagic) return "hello has a bad magic (not a torchwan ucx peer)";
  if (hello.version != kWireVersion) {
    return "peer speaks protocol version " + std::to_string(hello.version) + ", this rank " +
           std::to_string(kWireVersion);
  }
  if (hello.rank != static_cast<uint32_t>(peer)) {
    return "peer says it is rank " + std::to_string(hello.rank);
  }
  if (hello.size != static_cast<uint32_t>(size)) {
    return "peer thinks the group has " + std::to_string(hello.size) + " ranks, this rank " +
           std::to_string(size);
  }
  if (hello.lane != static_cast<uint32_t>(lane)) {
    return "hello for lane " + std::to_string(hello.lane) + " arrived on lane " +
           std::to_string(lane);
  }
  return {};
}

std::vector<uint8_t> encode_control(const ControlMessage& message) {
  constexpr size_t kHeaderBytes = 4 * sizeof(uint32_t);
  const size_t reason_length = std::min(message.reason.size(), kControlBytes - kHeaderBytes);
  std::vector<uint8_t> out;
  put_u32(out, kWireMagic);
  put_u32(out, kWireVersion);
  put_u32(out, static_cast<uint32_t>(message.type));
  put_u32(out, static_cast<uint32_t>(reason_length));
  out.insert(out.end(), message.reason.begin(),
             message.reason.begin() + static_cast<std::ptrdiff_t>(reason_length));
  out.resize(kControlBytes, 0);
  return out;
}

std::optional<ControlMessage> decode_control(const std::vector<uint8_t>& bytes) {
  if (bytes.size() != kControlBytes) return std::nullopt;
  Reader reader(bytes);
  uint32_t magic = 0, version = 0, type = 0, reason_length = 0;
  reader.u32(magic);
  reader.u32(version);
  reader.u32(type);
  reader.u32(reason_length);
  std::vector<uint8_t> reason;
  if (magic != kWireMagic || version != kWireVersion || !reader.bytes(reason_length, reason) ||
      type < static_cast<uint32_t>(ControlType::kHeartbeat) ||
      type > static_cast<uint32_t>(ControlType::kAbort)) {
    return std::nullopt;
  }
  return ControlMessage{static_cast<ControlType>(type), std::string(reason.begin(), reason.end())};
}

}  // namespace torchwan::transport::ucx
