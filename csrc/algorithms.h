// The latency-oriented algorithms and the broadcast pipeline; the ring family is in ring.h.
// Each runs one rank's side of one collective over an Exchange; collectives.cc picks between them.
#pragma once

#include <cstddef>
#include <cstdint>

#include "csrc/dtype.h"
#include "csrc/exchange.h"

namespace torchwan::engine {

// Allreduce in ceil(log2 P) exchange rounds (+1 fold-in and +1 fold-out round for the ranks
// beyond the largest power of two). Every pairwise combination is computed as
// (partial of the lower ranks) op (partial of the higher ranks) on both partners, so all ranks end
// with bit-identical results even for non-commutative-in-bits cases (NaN payloads, -0 vs +0).
void recursive_doubling_allreduce(Exchange& ex, uint8_t* data, size_t count, DataType dtype,
                                  ReduceOp op);

// Broadcast down a binomial tree rooted at `root`: ceil(log2 P) hops of the whole message.
void binomial_tree_broadcast(Exchange& ex, uint8_t* data, size_t bytes, int root);

// Broadcast along the chain root, root+1, ..., root-1, cut into chunks that every rank forwards
// as soon as it has them: each link carries the data once, P-1 chunk latencies of start-up.
void chain_broadcast(Exchange& ex, uint8_t* data, size_t bytes, int root);

// Dissemination barrier: ceil(log2 P) rounds of zero-length messages to rank + 2^k.
void dissemination_barrier(Exchange& ex);

}  // namespace torchwan::engine
