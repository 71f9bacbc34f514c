// The latency-oriented algorithms and the broadcast pipeline; the ring family is in ring.h.
// Each runs one rank's side of one collective over an Exchange; collectives.cc picks between them.
#pragma once

#include <cstddef>
#include <cstdint>

#include "csrc/algorithm_table.h"
#include "csrc/dtype.h"
#include "csrc/exchange.h"

namespace torchwan::engine {

// Every rank sends its whole buffer straight to every other rank and reduces all of them locally
// in rank order 0..P-1: one message latency whatever P, at (P-1)x the bytes of one buffer per
// rank, and bit-identical results everywhere (the same operations in the same order).
void direct_allreduce(Exchange& ex, uint8_t* data, size_t count, DataType dtype, ReduceOp op);
// The same for allgather (`out` holds this rank's block in its slot), reduce-scatter (`input` is
// P blocks; `work` has room for P blocks and holds the result in its first block on return) and
// barrier (one zero-length message each way between every pair, with `step`: an algorithm that
// synchronises several times in one call gives each barrier its own).
void direct_allgather(Exchange& ex, uint8_t* out, size_t bytes_per_rank);
void direct_reduce_scatter(Exchange& ex, const uint8_t* input, uint8_t* work, size_t count,
                           DataType dtype, ReduceOp op);
void direct_barrier(Exchange& ex, uint32_t step = 0);

// Allreduce as a direct reduce-scatter then a direct allgather over the ring's segments (rank r
// owns segment r): every rank sends each other rank that rank's segment, folds the P copies of its
// own in rank order 0..P-1, then sends the result to every rank. Two message latencies whatever
// P, with the ring's bytes per rank (2(P-1)/P of the buffer); the folds are direct_allreduce's, so
// the results are bit-identical to it on every rank.
void two_step_allreduce(Exchange& ex, uint8_t* data, size_t count, DataType dtype, ReduceOp op);

// Runs `algorithm`, one of the flat allreduces (direct, two steps, recursive doubling, ring), over
// the exchange's ranks (a Subgroup's, inside one).
void flat_allreduce(Exchange& ex, Algorithm algorithm, uint8_t* data, size_t count, DataType dtype,
                    ReduceOp op);

// Allreduce in ceil(log2 P) exchange rounds (+1 fold-in and +1 fold-out round for the ranks
// beyond the largest power of two). Every pairwise combination is computed as
// (partial of the lower ranks) op (partial of the higher ranks) on both partners, so all ranks end
// with bit-identical results even for non-commutative-in-bits cases (NaN payloads, -0 vs +0).
void recursive_doubling_allreduce(Exchange& ex, uint8_t* data, size_t count, DataType dtype,
                                  ReduceOp op);

// The root sends the message to every rank itself: one latency, P-1 copies on the root's link.
void direct_broadcast(Exchange& ex, uint8_t* data, size_t bytes, int root);

// Broadcast down a binomial tree rooted at `root`: ceil(log2 P) hops of the whole message.
void binomial_tree_broadcast(Exchange& ex, uint8_t* data, size_t bytes, int root);

// Broadcast along the chain root, root+1, ..., root-1, cut into chunks that every rank forwards
// as soon as it has them: each link carries the data once, P-1 chunk latencies of start-up.
void chain_broadcast(Exchange& ex, uint8_t* data, size_t bytes, int root);

// Reduce to `root` up a binomial tree rooted there: ceil(log2 P) hops of the whole message, every
// rank receiving from all its children at once. `data` is read on every rank and written only on
// the root. Each partial result is (lower positions) op (higher positions), positions counted
// from the root.
void binomial_tree_reduce(Exchange& ex, uint8_t* data, size_t count, DataType dtype, ReduceOp op,
                          int root);

// Reduce to `root` along the chain root-1, root-2, ..., root+1 -> root (positions P-1 down to 0),
// cut into chunks: every rank reduces a chunk into what it received and forwards it at once, so
// each link carries the data once. `data` is written only on the root.
void chain_reduce(Exchange& ex, uint8_t* data, size_t count, DataType dtype, ReduceOp op, int root);

// Dissemination barrier: ceil(log2 P) rounds of zero-length messages to rank + 2^k.
void dissemination_barrier(Exchange& ex);

}  // namespace torchwan::engine
