// Pipelined ring algorithms over a buffer cut into one segment per rank.
//
// Reduce-scatter: in P-1 steps every segment travels once around the ring, each rank reducing its
// own contribution into it, and rank r ends owning the full reduction of segment r. Every element
// is reduced exactly once per rank, in an order fixed by the ranks' positions, so the result is
// deterministic. Allgather: in P-1 steps each owned segment travels around the ring and is copied,
// so every rank ends with bit-identical data. Allreduce runs both as one fused pipeline.
//
// Each segment is cut into the same number K of chunks; a unit of work is (step, chunk). Every
// rank posts the receives of up to kMaxChunksInFlight units ahead and sends a unit as soon as its
// data is final (a step's chunk j is what the previous step received as chunk j), so the network
// in both directions and the reduction all overlap.
#pragma once

#include <cstddef>
#include <cstdint>
#include <vector>

#include "csrc/dtype.h"
#include "csrc/exchange.h"

namespace torchwan::engine {

struct RingLayout {
  std::vector<size_t> offset;     // bytes from the buffer start to segment i
  std::vector<size_t> length;     // bytes in segment i (a whole number of elements, may be 0)
  size_t chunk_bytes = 1;         // a whole number of elements, > 0
  size_t chunks_per_segment = 0;  // K: enough chunks for the longest segment
};

// `count` elements spread as evenly as possible over `size` segments (allreduce).
RingLayout balanced_ring_layout(size_t count, size_t element_bytes, int size);
// `size` consecutive blocks of `block_bytes` (allgather, reduce_scatter).
RingLayout block_ring_layout(size_t block_bytes, size_t element_bytes, int size);

// In place on `data` laid out as `layout`. Afterwards segment ex.rank() holds the reduction over
// all ranks of that segment; other segments hold partial results.
void ring_reduce_scatter(Exchange& ex, uint8_t* data, const RingLayout& layout, DataType dtype,
                         ReduceOp op);
// Every rank contributes segment ex.rank() of `data`; afterwards every segment is filled.
void ring_allgather(Exchange& ex, uint8_t* data, const RingLayout& layout);
// Reduce-scatter and allgather fused into one pipeline.
void ring_allreduce(Exchange& ex, uint8_t* data, const RingLayout& layout, DataType dtype,
                    ReduceOp op);

}  // namespace torchwan::engine
