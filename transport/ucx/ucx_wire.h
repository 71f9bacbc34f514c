// What the UCX transport puts on the wire and in the bootstrap store: the 64-bit UCX tags, the
// per-rank address record, and the hello exchanged on every lane at connection setup. Decoders
// check every length, so a malformed or foreign record is rejected with a reason, never read out
// of bounds.
#pragma once

#include <ucp/api/ucp.h>

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "security/job_secret.h"
#include "transport/request.h"

namespace torchwan::transport::ucx {

inline constexpr uint32_t kWireMagic = 0x54575558;  // "TWUX"
// 2: the hello carries a proof of the job secret.
inline constexpr uint32_t kWireVersion = 2;

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

// Heartbeats and goodbyes (see ControlMessage); the low 16 bits are above any lane number.
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
};
std::vector<uint8_t> encode_address_record(const AddressRecord& record);
// Returns the record, or sets `why` and returns nothing when `bytes` is not a valid record.
std::optional<AddressRecord> decode_address_record(const std::vector<uint8_t>& bytes,
                                                   std::string& why);

// Sent by each rank to each peer on each lane once the endpoints exist. `proof` shows that the
// sender holds the job secret (DataAuth::prove over the receiver's nonce; zero without a secret).
struct Hello {
  uint32_t magic = kWireMagic;
  uint32_t version = kWireVersion;
  uint32_t rank = 0;
  uint32_t size = 0;
  uint32_t lane = 0;
  security::Proof proof{};
};
inline constexpr size_t kHelloBytes = 5 * sizeof(uint32_t) + security::kProofBytes;
std::vector<uint8_t> encode_hello(const Hello& hello);
// A hello of any other size than kHelloBytes decodes with a zero magic, which check_hello rejects.
Hello decode_hello(const std::vector<uint8_t>& bytes);
// Empty when `hello` is what rank `peer` of a `size`-rank group must send on `lane`; else why not.
std::string check_hello(const Hello& hello, int peer, int size, int lane);

// Liveness traffic between connected ranks: a heartbeat every quarter of the peer timeout on
// lane 0, and a goodbye on every lane when a rank shuts its transport down or aborts, so its peers
// tell a departure from a crash and name the reason.
enum class ControlType : uint32_t { kHeartbeat = 1, kShutdown = 2, kAbort = 3 };
struct ControlMessage {
  ControlType type = ControlType::kHeartbeat;
  std::string reason;  // why a rank aborted; cut to what fits
};
inline constexpr size_t kControlBytes = 128;
std::vector<uint8_t> encode_control(const ControlMessage& message);  // always kControlBytes
// Nothing when `bytes` is not a control message of this protocol version.
std::optional<ControlMessage> decode_control(const std::vector<uint8_t>& bytes);

}  // namespace torchwan::transport::ucx
