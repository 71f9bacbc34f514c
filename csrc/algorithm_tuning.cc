#include "csrc/algorithm_tuning.h"

#include <algorithm>

namespace torchwan::engine {

size_t pipeline_chunk_bytes(size_t segment_bytes, size_t element_bytes) {
  const size_t target =
      std::clamp(segment_bytes / kTargetChunksPerSegment, kMinChunkBytes, kMaxChunkBytes);
  return std::max(element_bytes, target / element_bytes * element_bytes);
}

}  // namespace torchwan::engine
