#include "csrc/compression/topk_select.h"

#include "csrc/compression/wire_format.h"

namespace torchwan::compression {

void RadixSelect::consume(const RadixPass& pass, const uint64_t* histogram, size_t bins) {
  if (bins != (size_t{1} << pass.bits)) {
    throw CompressionError("torchwan compression: bad histogram size");
  }
  for (uint32_t digit = static_cast<uint32_t>(bins); digit-- > 0;) {
    const uint64_t count = histogram[digit];
    if (count >= remaining) {
      prefix |= digit << pass.shift;
      prefix_mask |= static_cast<uint32_t>((bins - 1) << pass.shift);
      return;
    }
    remaining -= count;
  }
  // Only reachable if the histograms counted fewer than k elements: a bug, not bad input.
  throw CompressionError("torchwan compression: top-k histogram holds fewer than k elements");
}

}  // namespace torchwan::compression
