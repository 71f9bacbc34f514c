// What the ZeroMQ transport publishes in the bootstrap store (base/byte_io.h, little-endian):
//
// - the address record: the candidate hosts this rank may be dialed at (every non-loopback IPv4
//   interface address, or the configured host) and the port of each lane's ROUTER, which listens
//   on all of them. A peer dials lane L at tcp://host:port[L] for the first host that answers.
// - the reach record, published after the dial phase: which ranks this rank could connect to.
//   From every rank's reach record each rank derives the same rung for every pair (see
//   decide_rung), without another round of messages.
// - the relay record, published by a rank with pairs no connection reaches: where its lanes
//   registered as relay members (zmq_relay_link.h).
//
// Decoders check every field and name the malformed one; nothing a peer wrote is trusted.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "transport/link_rung.h"

namespace torchwan::transport::zmq_detail {

inline constexpr size_t kMaxCandidateHosts = 64;
inline constexpr size_t kMaxHostBytes = 255;
inline constexpr size_t kMaxRecordLanes = 1024;
inline constexpr size_t kMaxReachRanks = 65536;

struct AddressRecord {
  std::vector<std::string> hosts;  // in the order the peer should try them
  std::vector<uint16_t> ports;     // per lane

  // "tcp://host:port" (brackets around an IPv6 host) of lane `lane` at hosts[host].
  std::string endpoint(size_t host, int lane) const;
  // Every lane-0 endpoint, as error messages list what was tried.
  std::vector<std::string> lane0_endpoints() const;
  bool operator==(const AddressRecord&) const = default;
};

// The store key under which `rank` publishes its address record.
std::string address_key(int rank);
std::vector<uint8_t> encode_address_record(const AddressRecord& record);
// Nothing, with `why` naming the malformed field, unless `bytes` is a valid record.
std::optional<AddressRecord> decode_address_record(const std::vector<uint8_t>& bytes,
                                                   std::string& why);

// Which ranks of a `size`-rank group `rank` connected to within its dial phase.
struct ReachRecord {
  int rank = 0;
  std::vector<char> reached;  // per rank; a rank's own entry is 0
  bool operator==(const ReachRecord&) const = default;
};

std::string reach_key(int rank);
std::vector<uint8_t> encode_reach_record(const ReachRecord& record);
std::optional<ReachRecord> decode_reach_record(const std::vector<uint8_t>& bytes, std::string& why);

// Where a rank with relayed pairs registered its lanes: its fresh member token and the relay's
// endpoint, or why it could not register at any relay (then its peers fail at once, naming it).
struct RelayRecord {
  std::string token;
  std::string endpoint;
  std::string failure;
  bool operator==(const RelayRecord&) const = default;
};
inline constexpr size_t kMaxRelayTokenBytes = 64;
inline constexpr size_t kMaxRelayFailureBytes = 4096;

std::string relay_key(int rank);
std::vector<uint8_t> encode_relay_record(const RelayRecord& record);
std::optional<RelayRecord> decode_relay_record(const std::vector<uint8_t>& bytes, std::string& why);

// The rung of the pair (a, b), the same seen from either side: direct when both connected,
// reverse when only one did, nothing when neither did (a relay has to carry it, or nothing).
std::optional<LinkRung> decide_rung(bool a_reached_b, bool b_reached_a);

}  // namespace torchwan::transport::zmq_detail
