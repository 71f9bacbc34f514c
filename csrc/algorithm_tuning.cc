#include "csrc/algorithm_tuning.h"

#include <algorithm>

namespace torchwan::engine {

size_t pipeline_chunk_bytes(size_t segment_bytes, size_t element_bytes) {
  const size_t target =
      std::clamp(segment_bytes / kTargetChunksPerSegment, kMinChunkBytes, kMaxChunkBytes);
  return std::max(element_bytes, target / element_bytes * element_bytes);
}

size_t latency_bound_max_bytes(double max_rtt_ms) {
  if (!(max_rtt_ms > 0)) return kSmallAllreduceMaxBytes;
  const double scaled = max_rtt_ms * static_cast<double>(kSmallAllreduceBytesPerRttMs);
  if (scaled >= static_cast<double>(kSmallAllreduceCeilingBytes)) {
    return kSmallAllreduceCeilingBytes;
  }
  return std::max(kSmallAllreduceMaxBytes, static_cast<size_t>(scaled));
}

}  // namespace torchwan::engine
