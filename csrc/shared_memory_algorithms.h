// Collectives among the ranks of the current Exchange (or Subgroup) that share one host, through
// their HostSharedMemory, which must be ready (shared_memory_allreduce.cc explains the scheme).
// Synchronisation travels as zero-length messages over the exchange, so lost peers, aborts and
// deadlines fail these calls as they fail any other.
#pragma once

#include <cstddef>
#include <cstdint>

#include "csrc/dtype.h"
#include "csrc/exchange.h"
#include "csrc/ring.h"

namespace torchwan::engine {

class HostSharedMemory;

// Afterwards segment ex.rank() of `data` (laid out as `layout`) holds the reduction over the
// ranks; the other segments are left as they were.
void shared_memory_reduce_scatter(Exchange& ex, const HostSharedMemory& memory, uint8_t* data,
                                  const RingLayout& layout, DataType dtype, ReduceOp op);
// Every rank contributes segment ex.rank() of `data`; afterwards every segment is filled.
void shared_memory_allgather(Exchange& ex, const HostSharedMemory& memory, uint8_t* data,
                             const RingLayout& layout);
// Both, over a balanced layout: bit-identical results on every rank.
void shared_memory_allreduce(Exchange& ex, const HostSharedMemory& memory, uint8_t* data,
                             size_t count, DataType dtype, ReduceOp op);

}  // namespace torchwan::engine
