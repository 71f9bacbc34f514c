// Entry points of the collectives with a root: reduce, gather, scatter.
//
// Gather and scatter always talk to the root directly, whatever the size: every non-root block
// must cross the root's link anyway, so a tree saves no root bandwidth, and direct messages take
// one WAN latency where a tree takes log2 P. The root posts all P-1 transfers at once and the
// transport stripes large ones over its lanes.
#include "csrc/algorithm_table.h"
#include "csrc/algorithms.h"
#include "csrc/argument_checks.h"
#include "csrc/collectives.h"
#include "csrc/exchange.h"

namespace torchwan::engine {

void reduce(const CollectiveContext& ctx, void* data, size_t count, DataType dtype, ReduceOp op,
            int root) {
  require_reduction("reduce", dtype, op);
  require_root("reduce", root, ctx.transport.size());
  const size_t bytes = checked_bytes("reduce", count, element_size(dtype));
  require_buffer("reduce", data, bytes);
  if (!needs_exchange(ctx, bytes)) return;
  const Algorithm algorithm = choose_algorithm(
      Collective::kReduce, {bytes, ctx.transport.size(), ctx.topology}, ctx.algorithms);
  Exchange ex(ctx, "reduce");
  auto* bytes_ptr = static_cast<uint8_t*>(data);
  if (count == 0) {
    // Only the signature check.
  } else if (algorithm == Algorithm::kBinomialTree) {
    binomial_tree_reduce(ex, bytes_ptr, count, dtype, op, root);
  } else {
    chain_reduce(ex, bytes_ptr, count, dtype, op, root);
  }
  ex.finish();
}

void gather(const CollectiveContext& ctx, const void* input, void* output, size_t bytes_per_rank,
            int root) {
  const int size = ctx.transport.size();
  const int rank = ctx.transport.rank();
  require_root("gather", root, size);
  require_buffer("gather", input, bytes_per_rank);
  checked_bytes("gather", bytes_per_rank, static_cast<size_t>(size));
  if (rank == root) require_buffer("gather", output, bytes_per_rank);
  auto* out = static_cast<uint8_t*>(output);
  if (rank == root) {
    copy_bytes(out + static_cast<size_t>(rank) * bytes_per_rank, input, bytes_per_rank);
  }
  if (!needs_exchange(ctx, bytes_per_rank)) return;
  Exchange ex(ctx, "gather");
  if (bytes_per_rank > 0) {
    if (rank == root) {
      for (int peer = 0; peer < size; ++peer) {
        if (peer != rank) {
          ex.recv(peer, 0, out + static_cast<size_t>(peer) * bytes_per_rank, bytes_per_rank);
        }
      }
    } else {
      ex.send(root, 0, input, bytes_per_rank);
    }
    ex.wait_all();
  }
  ex.finish();
}

void scatter(const CollectiveContext& ctx, const void* input, void* output, size_t bytes_per_rank,
             int root) {
  const int size = ctx.transport.size();
  const int rank = ctx.transport.rank();
  require_root("scatter", root, size);
  require_buffer("scatter", output, bytes_per_rank);
  checked_bytes("scatter", bytes_per_rank, static_cast<size_t>(size));
  if (rank == root) require_buffer("scatter", input, bytes_per_rank);
  const auto* in = static_cast<const uint8_t*>(input);
  if (!needs_exchange(ctx, bytes_per_rank)) {
    if (rank == root) {
      copy_bytes(output, in + static_cast<size_t>(rank) * bytes_per_rank, bytes_per_rank);
    }
    return;
  }
  Exchange ex(ctx, "scatter");
  if (bytes_per_rank > 0) {
    if (rank == root) {
      for (int peer = 0; peer < size; ++peer) {
        if (peer != rank) {
          ex.send(peer, 0, in + static_cast<size_t>(peer) * bytes_per_rank, bytes_per_rank);
        }
      }
    } else {
      ex.recv(root, 0, output, bytes_per_rank);
    }
    ex.wait_all();
  }
  ex.finish();
  // After the sends: the root's own block may alias its output.
  if (rank == root) {
    copy_bytes(output, in + static_cast<size_t>(rank) * bytes_per_rank, bytes_per_rank);
  }
}

}  // namespace torchwan::engine
