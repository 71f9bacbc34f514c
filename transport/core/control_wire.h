// The control wire both links speak with each peer: the hello on every lane at connection setup
// (who is speaking, the settings both ends must share, the proof of the job secret), heartbeats,
// and the goodbye a rank sends when it shuts down or aborts, with its acknowledgement. One codec:
// every control message is kControlBytes long (a link can post fixed-size receives for it), starts
// with the shared preamble (wire_header.h) and a body length, and decodes to a ControlMessage or
// throws WireError naming what is malformed.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <variant>
#include <vector>

#include "transport/core/wire_header.h"
#include "transport/options.h"
#include "transport/secure/job_secret.h"

namespace torchwan::transport::core {

enum class ControlType : uint16_t { kHello = 1, kHeartbeat = 2, kGoodbye = 3, kGoodbyeAck = 4 };

// Sent by each rank to each peer on each lane first. `proof` shows that the sender holds the job
// secret (DataAuth::prove over the receiver's nonce; zero without a secret).
struct Hello {
  uint32_t rank = 0;
  uint32_t size = 0;
  uint32_t lane = 0;
  uint32_t lanes = 0;
  // Sender and receiver cut each message independently, so both must agree on these.
  uint64_t chunk_bytes = 0;
  uint64_t stripe_min_bytes = 0;
  security::Proof proof{};
};

// A sign of life between connected ranks.
struct Heartbeat {};

// Why a rank leaves: an orderly shutdown (its peers see a departure), or an abort (its peers
// see a failure with the reason it gives).
enum class Departure : uint16_t { kShutdown = 1, kAbort = 2 };
struct Goodbye {
  Departure departure = Departure::kShutdown;
  std::string reason;  // cut to what fits
};

// The answer to a goodbye on the lane it came on: everything sent before it arrived.
struct GoodbyeAck {};

using ControlMessage = std::variant<Hello, Heartbeat, Goodbye, GoodbyeAck>;

inline constexpr size_t kControlBytes = 256;

std::vector<uint8_t> encode_control(const ControlMessage& message);  // always kControlBytes
ControlMessage decode_control(const void* bytes, size_t size);
inline ControlMessage decode_control(const std::vector<uint8_t>& bytes) {
  return decode_control(bytes.data(), bytes.size());
}
// What a control message is, for errors ("a heartbeat").
std::string describe(const ControlMessage& message);

// What every peer's hello must carry in a `size`-rank group using `options` (rank, lane and proof
// left empty): the settings sender and receiver both cut messages by.
Hello expected_hello(const TransportOptions& options, int size);

// Empty when `hello` is what rank `peer` must send on `lane` of a group shaped like `expected`
// (whose rank, lane and proof are ignored); else why not.
std::string check_hello(const Hello& hello, int peer, int lane, const Hello& expected);

}  // namespace torchwan::transport::core
