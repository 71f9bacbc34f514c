#include "transport/striping.h"

#include <algorithm>

namespace torchwan::transport {

std::vector<WirePiece> plan_pieces(const TransportOptions& options, Tag tag, size_t length) {
  std::vector<WirePiece> pieces;
  const size_t lanes = static_cast<size_t>(options.lanes);
  if (length < options.stripe_min_bytes || lanes == 1) {
    const int lane = static_cast<int>(tag % lanes);
    if (length == 0) pieces.push_back({lane, 0, 0});
    for (size_t offset = 0; offset < length; offset += options.chunk_bytes) {
      pieces.push_back({lane, offset, std::min(options.chunk_bytes, length - offset)});
    }
    return pieces;
  }
  // Stripes differ in size by at most one byte; every lane gets one.
  const size_t base = length / lanes;
  const size_t extra = length % lanes;
  size_t stripe_offset = 0;
  for (size_t lane = 0; lane < lanes; ++lane) {
    const size_t stripe_length = base + (lane < extra ? 1 : 0);
    for (size_t done = 0; done < stripe_length; done += options.chunk_bytes) {
      pieces.push_back({static_cast<int>(lane), stripe_offset + done,
                        std::min(options.chunk_bytes, stripe_length - done)});
    }
    stripe_offset += stripe_length;
  }
  return pieces;
}

}  // namespace torchwan::transport
