// What a relay is configured with and what it reports (docs/relay.md).
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>

#include "transport/secure/job_secret.h"

namespace torchwan::relay {

struct RelayOptions {
  std::string host = "0.0.0.0";
  int port = 0;  // 0: any free port (see RelayServer::port())
  // When set, the relay is a CURVE server admitting only holders of this secret.
  std::optional<security::JobSecret> secret;
  size_t max_streams = 1024;
  // A relayed lane's credit comes back over both hops, so its window must cover its share of the
  // path's rate for two round trips; a lane left alone at the end of a striped send needs all of
  // it (1 Gbit/s over 2 x 50 ms is 12.5 MB). Smaller windows leave that lane window-bound.
  uint64_t window_bytes = 16ull << 20;
  uint32_t max_chunk_bytes = 256u << 10;  // the largest DATA payload the relay accepts
  // Caps max_streams so that max_streams x window_bytes stays within it.
  uint64_t max_memory_bytes = 4096ull << 20;
  // TCP congestion control of accepted connections (relay_tcp.h); empty: the system default.
  // The relay's end sends every member's inbound bytes over one uplink: in the WAN lab BBR there
  // made a relayed all_reduce 20% slower than cubic, while the members' ends gain from it.
  std::string congestion;
};

// Throws std::invalid_argument naming the option when options cannot work (zero window, a chunk
// above the window, a memory bound below one window).
void validate(const RelayOptions& options);
// max_streams, lowered so that streams x window fits max_memory_bytes.
size_t effective_max_streams(const RelayOptions& options);

struct RelayStats {
  size_t members = 0;            // registered members
  size_t streams = 0;            // streams with bytes in flight
  uint64_t in_flight_bytes = 0;  // forwarded or queued, not yet credited by their receivers
  uint64_t queued_bytes = 0;     // held in the relay's own per-destination queues
  uint64_t peak_queued_bytes = 0;
  uint64_t peak_in_flight_bytes = 0;
  uint64_t forwarded_bytes = 0;
  uint64_t dropped_clients = 0;  // malformed input, floods, impersonation attempts
  uint64_t refused_streams = 0;  // NO_ROUTE answers: unknown member or stream limit
  uint64_t handshake_failures = 0;
};

}  // namespace torchwan::relay
