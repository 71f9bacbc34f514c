#include "transport/ucx/ucx_wire.h"

#include <algorithm>
#include <span>

#include "base/byte_io.h"
#include "transport/core/wire_header.h"

namespace torchwan::transport::ucx {

namespace {

// A worker address of tcp is well under 1 KiB; anything huge is garbage.
constexpr uint32_t kMaxAddressBytes = 1 << 20;
constexpr uint32_t kMaxLanes = 1024;

}  // namespace

std::string address_key(int rank) { return "tw/ucx/" + std::to_string(rank); }

std::vector<uint8_t> encode_address_record(const AddressRecord& record) {
  base::ByteWriter out;
  out.put<uint32_t>(kAddressRecordMagic);
  out.put<uint32_t>(core::kWireVersion);
  out.put<uint32_t>(static_cast<uint32_t>(record.rank));
  out.put<uint64_t>(record.stripe_min_bytes);
  out.put<uint64_t>(record.chunk_bytes);
  out.put<uint32_t>(static_cast<uint32_t>(record.lane_addresses.size()));
  for (const auto& address : record.lane_addresses) {
    out.put<uint32_t>(static_cast<uint32_t>(address.size()));
    out.put_bytes(address.data(), address.size());
  }
  const size_t interfaces = std::min(record.interface_addresses.size(), kMaxInterfaceAddresses);
  out.put<uint32_t>(static_cast<uint32_t>(interfaces));
  for (size_t i = 0; i < interfaces; ++i) out.put_string(record.interface_addresses[i]);
  return out.take();
}

std::optional<AddressRecord> decode_address_record(const std::vector<uint8_t>& bytes,
                                                   std::string& why) {
  base::ByteReader in(bytes, "ucx address record");
  try {
    if (in.get<uint32_t>("magic") != kAddressRecordMagic) {
      why = "not a torchwan ucx address record (bad magic)";
      return std::nullopt;
    }
    const auto version = in.get<uint32_t>("version");
    if (version != core::kWireVersion) {
      why = "address record version " + std::to_string(version) + ", expected " +
            std::to_string(core::kWireVersion) + " (mixed torchwan versions?)";
      return std::nullopt;
    }
    AddressRecord record;
    record.rank = static_cast<int>(in.get<uint32_t>("rank"));
    record.stripe_min_bytes = in.get<uint64_t>("stripe_min_bytes");
    record.chunk_bytes = in.get<uint64_t>("chunk_bytes");
    // Each lane takes at least its length and one byte of address.
    const uint32_t lanes = in.get_count("lane count", sizeof(uint32_t) + 1);
    if (lanes == 0 || lanes > kMaxLanes) {
      in.reject("lane count",
                std::to_string(lanes) + " lanes (1 to " + std::to_string(kMaxLanes) + " allowed)");
    }
    record.lane_addresses.resize(lanes);
    for (auto& address : record.lane_addresses) {
      const auto length = in.get<uint32_t>("worker address length");
      if (length == 0 || length > kMaxAddressBytes) {
        in.reject("worker address length", std::to_string(length) + " bytes");
      }
      const std::span<const uint8_t> body = in.get_bytes(length, "worker address");
      address.assign(body.begin(), body.end());
    }
    const uint32_t interfaces = in.get_count("interface address count", sizeof(uint32_t));
    if (interfaces > kMaxInterfaceAddresses) {
      in.reject("interface address count", std::to_string(interfaces) + " addresses (at most " +
                                               std::to_string(kMaxInterfaceAddresses) + ")");
    }
    for (uint32_t i = 0; i < interfaces; ++i) {
      record.interface_addresses.push_back(in.get_string("interface address", 64));
    }
    in.expect_end();
    return record;
  } catch (const base::MalformedBytes& malformed) {
    why = malformed.what();
    return std::nullopt;
  }
}

}  // namespace torchwan::transport::ucx
