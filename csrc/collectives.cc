// Entry points: validate arguments (identically on every rank, before any traffic), handle the
// trivial cases without traffic, and pick an algorithm by size.
#include "csrc/collectives.h"

#include <cstring>
#include <stdexcept>
#include <string>

#include "csrc/algorithm_tuning.h"
#include "csrc/algorithms.h"
#include "csrc/exchange.h"
#include "csrc/reduce.h"
#include "csrc/ring.h"

namespace torchwan::engine {
namespace {

void require_reduction(const char* collective, DataType dtype, ReduceOp op) {
  if (!reduce_supported(dtype, op)) {
    throw std::invalid_argument(std::string(collective) + ": " + reduce_op_name(op) +
                                " is not defined for " + dtype_name(dtype));
  }
}

void require_buffer(const char* collective, const void* buffer, size_t bytes) {
  if (buffer == nullptr && bytes > 0) {
    throw std::invalid_argument(std::string(collective) + ": null buffer for " +
                                std::to_string(bytes) + " bytes");
  }
}

// Copies unless source and destination are the same bytes (allowed aliasing).
void copy_bytes(void* destination, const void* source, size_t bytes) {
  if (destination != source && bytes > 0) std::memmove(destination, source, bytes);
}

}  // namespace

void allreduce(const CollectiveContext& ctx, void* data, size_t count, DataType dtype,
               ReduceOp op) {
  require_reduction("allreduce", dtype, op);
  const size_t bytes = count * element_size(dtype);
  require_buffer("allreduce", data, bytes);
  const int size = ctx.transport.size();
  if (size == 1 || count == 0) return;
  Exchange ex(ctx, "allreduce");
  auto* bytes_ptr = static_cast<uint8_t*>(data);
  if (bytes < kSmallAllreduceMaxBytes) {
    recursive_doubling_allreduce(ex, bytes_ptr, count, dtype, op);
  } else {
    ring_allreduce(ex, bytes_ptr, balanced_ring_layout(count, element_size(dtype), size), dtype,
                   op);
  }
}

void broadcast(const CollectiveContext& ctx, void* data, size_t bytes, int root) {
  const int size = ctx.transport.size();
  if (root < 0 || root >= size) {
    throw std::invalid_argument("broadcast: root " + std::to_string(root) + " is not a rank of " +
                                std::to_string(size));
  }
  require_buffer("broadcast", data, bytes);
  if (size == 1 || bytes == 0) return;
  Exchange ex(ctx, "broadcast");
  if (bytes < kTreeBroadcastMaxBytes) {
    binomial_tree_broadcast(ex, static_cast<uint8_t*>(data), bytes, root);
  } else {
    chain_broadcast(ex, static_cast<uint8_t*>(data), bytes, root);
  }
}

void allgather(const CollectiveContext& ctx, const void* input, void* output,
               size_t bytes_per_rank) {
  const int size = ctx.transport.size();
  const int rank = ctx.transport.rank();
  require_buffer("allgather", input, bytes_per_rank);
  require_buffer("allgather", output, bytes_per_rank);
  if (bytes_per_rank == 0) return;
  auto* out = static_cast<uint8_t*>(output);
  copy_bytes(out + static_cast<size_t>(rank) * bytes_per_rank, input, bytes_per_rank);
  if (size == 1) return;
  Exchange ex(ctx, "allgather");
  ring_allgather(ex, out, block_ring_layout(bytes_per_rank, 1, size));
}

void reduce_scatter(const CollectiveContext& ctx, const void* input, void* output, size_t count,
                    DataType dtype, ReduceOp op) {
  require_reduction("reduce_scatter", dtype, op);
  const int size = ctx.transport.size();
  const int rank = ctx.transport.rank();
  const size_t block_bytes = count * element_size(dtype);
  require_buffer("reduce_scatter", input, block_bytes);
  require_buffer("reduce_scatter", output, block_bytes);
  if (count == 0) return;
  if (size == 1) {
    copy_bytes(output, input, block_bytes);
    return;
  }
  Exchange ex(ctx, "reduce_scatter");
  // The ring reduces in place, and `input` is const: work on a copy (a memory-speed pass, small
  // next to the network time of a WAN collective).
  const size_t total_bytes = block_bytes * static_cast<size_t>(size);
  uint8_t* work = ex.scratch(total_bytes);
  std::memcpy(work, input, total_bytes);
  ring_reduce_scatter(ex, work, block_ring_layout(block_bytes, element_size(dtype), size), dtype,
                      op);
  std::memcpy(output, work + static_cast<size_t>(rank) * block_bytes, block_bytes);
}

void barrier(const CollectiveContext& ctx) {
  if (ctx.transport.size() == 1) return;
  Exchange ex(ctx, "barrier");
  dissemination_barrier(ex);
}

}  // namespace torchwan::engine
