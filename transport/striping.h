// How a message is cut for the wire, shared by every transport so both ends of any transport agree
// without negotiating: a message of at least stripe_min_bytes is split into one contiguous stripe
// per lane; each stripe (or a small message whole) is cut into chunks of at most chunk_bytes.
#pragma once

#include <cstddef>
#include <vector>

#include "transport/options.h"
#include "transport/request.h"

namespace torchwan::transport {

struct WirePiece {
  int lane;
  size_t offset;  // within the message
  size_t length;
};

// The pieces of a `length`-byte message with `tag`, in the order each lane carries them. A message
// below stripe_min_bytes stays on one lane chosen from its tag, so messages with one tag stay
// ordered. A zero-length message is one empty piece.
std::vector<WirePiece> plan_pieces(const TransportOptions& options, Tag tag, size_t length);

}  // namespace torchwan::transport
