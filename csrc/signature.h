// The wire form of a CallSignature, as one rank sends it to each peer so that the peer can check
// that both are in the same collective call. It is a fixed-length record with a magic and a
// version; the decoder trusts nothing in it (a peer may be buggy, of another version, or not a
// torchwan rank at all) and turns any text it carries into printable ASCII.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>

#include "csrc/collectives.h"

namespace torchwan::engine {

inline constexpr size_t kSignatureBytes = 128;
using EncodedSignature = std::array<uint8_t, kSignatureBytes>;

// What one rank tells one peer. `pair_*` describe the traffic between exactly these two ranks
// (alltoallv, where per-rank counts differ legitimately); `has_pair` says they are meaningful.
struct WireSignature {
  uint8_t kind = 0;
  uint8_t dtype = 0;
  uint8_t op = 0;
  int32_t root = -1;
  uint64_t count = 0;
  bool has_pair = false;
  uint64_t pair_send_bytes = 0;  // what the sender sends to the receiver
  uint64_t pair_recv_bytes = 0;  // what the sender expects from the receiver
  std::string describe;          // cut to what fits in the record
};

WireSignature wire_signature(const CallSignature& signature);
EncodedSignature encode_signature(const WireSignature& signature);
// Nothing (and `why` set) when `bytes` is not a signature record of this version.
std::optional<WireSignature> decode_signature(const uint8_t* bytes, size_t length,
                                              std::string& why);

// Empty when the calls agree; otherwise a sentence naming both sides, e.g. "rank 2 called
// allreduce(float32 x 999, SUM) but rank 0 called allreduce(float32 x 1000, SUM)".
std::string signature_mismatch(const WireSignature& mine, int my_rank, const WireSignature& theirs,
                               int their_rank);

}  // namespace torchwan::engine
