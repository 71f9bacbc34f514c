// Entry points of the symmetric collectives: validate arguments (identically on every rank,
// before any traffic), handle the trivial cases without traffic, and pick an algorithm by size.
// Rooted collectives are in rooted_collectives.cc, alltoallv in alltoallv.cc.
#include "csrc/collectives.h"

#include <fmt/format.h>

#include <cstring>
#include <stdexcept>
#include <string>

#include "csrc/algorithm_table.h"
#include "csrc/algorithm_tuning.h"
#include "csrc/algorithms.h"
#include "csrc/argument_checks.h"
#include "csrc/exchange.h"
#include "csrc/hierarchical.h"
#include "csrc/host_shared_memory.h"
#include "csrc/reduce.h"
#include "csrc/ring.h"
#include "csrc/shared_memory_algorithms.h"
#include "csrc/topology.h"

namespace torchwan::engine {
namespace {

// A topology that cannot describe this group is rejected before any traffic; every rank holds
// the same one, so all fail alike. (Whether the regions are used is algorithm_table.cc's rule.)
void check_topology(const CollectiveContext& ctx) {
  const Topology* topology = ctx.topology;
  if (topology == nullptr) return;
  if (topology->size() != ctx.transport.size() || !topology->consistent()) {
    throw std::invalid_argument(
        fmt::format("allreduce: the topology ({} ranks) does not describe this group of {} ranks",
                    topology->size(), ctx.transport.size()));
  }
}

}  // namespace

void allreduce(const CollectiveContext& ctx, void* data, size_t count, DataType dtype,
               ReduceOp op) {
  require_reduction("allreduce", dtype, op);
  const size_t bytes = checked_bytes("allreduce", count, element_size(dtype));
  require_buffer("allreduce", data, bytes);
  check_topology(ctx);
  if (!needs_exchange(ctx, bytes)) return;
  const int size = ctx.transport.size();
  const bool shared_memory = ctx.host_memory != nullptr && !ctx.host_memory->unavailable();
  const Algorithm algorithm = choose_algorithm(
      Collective::kAllreduce, {bytes, size, ctx.topology, shared_memory}, ctx.algorithms);
  Exchange ex(ctx, "allreduce");
  auto* bytes_ptr = static_cast<uint8_t*>(data);
  if (count == 0) {
    // Nothing to reduce; only the signature check runs.
  } else if (algorithm == Algorithm::kSharedMemory && ctx.host_memory->ready(ex)) {
    shared_memory_allreduce(ex, *ctx.host_memory, bytes_ptr, count, dtype, op);
  } else if (algorithm == Algorithm::kHosts) {
    host_allreduce(ex, *ctx.topology, ctx.host_memory, bytes_ptr, count, dtype, op);
  } else if (algorithm == Algorithm::kHierarchical) {
    hierarchical_allreduce(ex, *ctx.topology, bytes_ptr, count, dtype, op);
  } else {
    // Ranks of one host that cannot share memory after all (every rank learns it alike) take the
    // ring over the sockets.
    flat_allreduce(ex, algorithm == Algorithm::kSharedMemory ? Algorithm::kRing : algorithm,
                   bytes_ptr, count, dtype, op);
  }
  ex.finish();
}

void broadcast(const CollectiveContext& ctx, void* data, size_t bytes, int root) {
  require_root("broadcast", root, ctx.transport.size());
  require_buffer("broadcast", data, bytes);
  if (!needs_exchange(ctx, bytes)) return;
  const Algorithm algorithm = choose_algorithm(
      Collective::kBroadcast, {bytes, ctx.transport.size(), ctx.topology}, ctx.algorithms);
  Exchange ex(ctx, "broadcast");
  if (bytes == 0) {
    // Only the signature check.
  } else if (algorithm == Algorithm::kDirect) {
    direct_broadcast(ex, static_cast<uint8_t*>(data), bytes, root);
  } else if (algorithm == Algorithm::kBinomialTree) {
    binomial_tree_broadcast(ex, static_cast<uint8_t*>(data), bytes, root);
  } else {
    chain_broadcast(ex, static_cast<uint8_t*>(data), bytes, root);
  }
  ex.finish();
}

void allgather(const CollectiveContext& ctx, const void* input, void* output,
               size_t bytes_per_rank) {
  const int size = ctx.transport.size();
  const int rank = ctx.transport.rank();
  require_buffer("allgather", input, bytes_per_rank);
  require_buffer("allgather", output, bytes_per_rank);
  checked_bytes("allgather", bytes_per_rank, static_cast<size_t>(size));
  auto* out = static_cast<uint8_t*>(output);
  if (bytes_per_rank > 0) {
    copy_bytes(out + static_cast<size_t>(rank) * bytes_per_rank, input, bytes_per_rank);
  }
  if (!needs_exchange(ctx, bytes_per_rank)) return;
  const Algorithm algorithm = choose_algorithm(
      Collective::kAllgather, {bytes_per_rank, size, ctx.topology}, ctx.algorithms);
  Exchange ex(ctx, "allgather");
  if (bytes_per_rank == 0) {
    // Only the signature check.
  } else if (algorithm == Algorithm::kDirect) {
    direct_allgather(ex, out, bytes_per_rank);
  } else {
    ring_allgather(ex, out, block_ring_layout(bytes_per_rank, 1, size));
  }
  ex.finish();
}

void reduce_scatter(const CollectiveContext& ctx, const void* input, void* output, size_t count,
                    DataType dtype, ReduceOp op) {
  require_reduction("reduce_scatter", dtype, op);
  const int size = ctx.transport.size();
  const int rank = ctx.transport.rank();
  const size_t block_bytes = checked_bytes("reduce_scatter", count, element_size(dtype));
  const size_t total_bytes =
      checked_bytes("reduce_scatter", block_bytes, static_cast<size_t>(size));
  require_buffer("reduce_scatter", input, block_bytes);
  require_buffer("reduce_scatter", output, block_bytes);
  if (!needs_exchange(ctx, block_bytes)) {
    if (size == 1) copy_bytes(output, input, block_bytes);
    return;
  }
  const Algorithm algorithm = choose_algorithm(Collective::kReduceScatter,
                                               {block_bytes, size, ctx.topology}, ctx.algorithms);
  Exchange ex(ctx, "reduce_scatter");
  if (count > 0 && algorithm == Algorithm::kDirect) {
    uint8_t* work = ex.scratch(total_bytes);
    direct_reduce_scatter(ex, static_cast<const uint8_t*>(input), work, count, dtype, op);
    ex.finish();  // checked before the output is written: a mismatched call leaves it untouched
    std::memcpy(output, work, block_bytes);
    return;
  }
  if (count > 0) {
    // The ring reduces in place, and `input` is const: work on a copy (a memory-speed pass,
    // small next to the network time of a WAN collective).
    uint8_t* work = ex.scratch(total_bytes);
    std::memcpy(work, input, total_bytes);
    ring_reduce_scatter(ex, work, block_ring_layout(block_bytes, element_size(dtype), size), dtype,
                        op);
    // Checked before the output is written, so a mismatched call leaves it untouched.
    ex.finish();
    std::memcpy(output, work + static_cast<size_t>(rank) * block_bytes, block_bytes);
    return;
  }
  ex.finish();
}

void barrier(const CollectiveContext& ctx) {
  if (ctx.transport.size() == 1) return;
  Exchange ex(ctx, "barrier");
  if (choose_algorithm(Collective::kBarrier, {0, ctx.transport.size(), ctx.topology},
                       ctx.algorithms) == Algorithm::kDirect) {
    direct_barrier(ex);
  } else {
    dissemination_barrier(ex);
  }
  ex.finish();
}

}  // namespace torchwan::engine
