// What the UCX transport puts on the wire and in the bootstrap store: the 64-bit UCX tags and the
// per-rank address record. Hellos, heartbeats and goodbyes are the control wire's
// (transport/core/control_wire.h), sent under the tags below. The decoder checks every length, so
// a malformed or foreign record is rejected with a reason, never read out of bounds.
#pragma once

#include <ucp/api/ucp.h>

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "transport/request.h"

namespace torchwan::transport::ucx {

// The address record lives in the store, not on the wire; it names its own kind and the protocol
// version of the build that wrote it, so ranks of mixed builds are told apart at bootstrap.
inline constexpr uint32_t kAddressRecordMagic = 0x54575558;  // "TWUX"

// A UCX tag carries the sender's rank in its top 16 bits and the user tag below; receives match
// all 64 bits, so they name their source. Rank 0xFFFF cannot exist (size <= 65535) and marks the
// transport's own hello messages.
inline constexpr ucp_tag_t kFullTagMask = ~ucp_tag_t{0};
inline constexpr ucp_tag_t kSourceTagMask = ucp_tag_t{0xFFFF} << 48;

inline ucp_tag_t data_wire_tag(int source_rank, Tag tag) {
  return (static_cast<ucp_tag_t>(source_rank) << 48) | tag;
}
inline ucp_tag_t hello_wire_tag(int source_rank, int lane) {
  return kSourceTagMask | (static_cast<ucp_tag_t>(source_rank) << 16) |
         static_cast<ucp_tag_t>(lane);
}

// Heartbeats and goodbyes; the low 16 bits are above any lane number.
inline ucp_tag_t control_wire_tag(int source_rank) {
  return kSourceTagMask | (static_cast<ucp_tag_t>(source_rank) << 16) | 0xFFFF;
}

// The store key under which `rank` publishes its worker addresses.
std::string address_key(int rank);

// One ucp worker address per lane, and the striping settings, which every rank must share because
// sender and receiver cut each message independently.
struct AddressRecord {
  int rank = -1;
  uint64_t stripe_min_bytes = 0;
  uint64_t chunk_bytes = 0;
  std::vector<std::vector<uint8_t>> lane_addresses;
  // The rank's interface addresses, for error messages only (UCX dials what the worker address
  // holds); at most kMaxInterfaceAddresses.
  std::vector<std::string> interface_addresses;
};
inline constexpr size_t kMaxInterfaceAddresses = 64;
std::vector<uint8_t> encode_address_record(const AddressRecord& record);
// Returns the record, or sets `why` and returns nothing when `bytes` is not a valid record.
std::optional<AddressRecord> decode_address_record(const std::vector<uint8_t>& bytes,
                                                   std::string& why);

}  // namespace torchwan::transport::ucx
