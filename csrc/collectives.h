// Collective algorithms on byte buffers over a Transport. Each call is synchronous on the calling
// thread, drives many transport requests at once, and throws a TransportError (naming the op, the
// peer and the cause) if any request fails or the deadline passes; pending requests are canceled
// before it returns, so the caller may free its buffers.
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>

#include "csrc/dtype.h"
#include "transport/transport.h"

namespace torchwan::engine {

// Identifies one collective call: every rank of the group passes the same `seq` for the same call.
struct CollectiveContext {
  transport::Transport& transport;
  uint32_t seq;
  std::chrono::steady_clock::time_point deadline;
};

// Tags: collectives use [seq:31][step:16] (bit 47 clear); point-to-point user messages set bit 47.
transport::Tag collective_tag(uint32_t seq, uint32_t step);
transport::Tag p2p_tag(uint32_t user_tag);

// In place: every rank ends with the reduction over all ranks of its `count` elements.
void allreduce(const CollectiveContext& ctx, void* data, size_t count, DataType dtype,
               ReduceOp op);
// In place: every rank ends with root's `bytes`.
void broadcast(const CollectiveContext& ctx, void* data, size_t bytes, int root);
// `output` (size * bytes_per_rank) receives every rank's `input` in rank order. `input` may alias
// output + rank * bytes_per_rank.
void allgather(const CollectiveContext& ctx, const void* input, void* output,
               size_t bytes_per_rank);
// `input` holds size blocks of `count` elements; `output` receives the reduction of block `rank`.
void reduce_scatter(const CollectiveContext& ctx, const void* input, void* output, size_t count,
                    DataType dtype, ReduceOp op);
// Returns once every rank has entered.
void barrier(const CollectiveContext& ctx);

}  // namespace torchwan::engine
