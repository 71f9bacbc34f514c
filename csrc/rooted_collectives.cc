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
namespace {

// The exchange of gather and scatter: the root moves one block with every other rank through
// root_moves(peer) (a receive for gather, a send for scatter), every other rank moves its own
// block with the root through rank_moves(); then waits for all of them and finishes `ex`.
template <typename RootMoves, typename RankMoves>
void exchange_blocks_with_root(Exchange& ex, int root, size_t bytes_per_rank,
                               RootMoves&& root_moves, RankMoves&& rank_moves) {
  if (bytes_per_rank > 0) {
    if (ex.rank() == root) {
      for (int peer = 0; peer < ex.size(); ++peer) {
        if (peer != root) root_moves(peer);
      }
    } else {
      rank_moves();
    }
    ex.wait_all();
  }
  ex.finish();
}

// The argument checks of gather and scatter: `root` is a rank, every rank passes its own block of
// `bytes_per_rank`, the root also the buffer of all `size` blocks.
void require_blocks_with_root(const char* collective, int root, int rank, int size,
                              const void* own_block, const void* all_blocks,
                              size_t bytes_per_rank) {
  require_root(collective, root, size);
  require_buffer(collective, own_block, bytes_per_rank);
  checked_bytes(collective, bytes_per_rank, static_cast<size_t>(size));
  if (rank == root) require_buffer(collective, all_blocks, bytes_per_rank);
}

}  // namespace

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
  require_blocks_with_root("gather", root, rank, size, input, output, bytes_per_rank);
  auto* out = static_cast<uint8_t*>(output);
  if (rank == root) {
    copy_bytes(out + static_cast<size_t>(rank) * bytes_per_rank, input, bytes_per_rank);
  }
  if (!needs_exchange(ctx, bytes_per_rank)) return;
  Exchange ex(ctx, "gather");
  exchange_blocks_with_root(
      ex, root, bytes_per_rank,
      [&](int peer) {
        ex.recv(peer, 0, out + static_cast<size_t>(peer) * bytes_per_rank, bytes_per_rank);
      },
      [&] { ex.send(root, 0, input, bytes_per_rank); });
}

void scatter(const CollectiveContext& ctx, const void* input, void* output, size_t bytes_per_rank,
             int root) {
  const int size = ctx.transport.size();
  const int rank = ctx.transport.rank();
  require_blocks_with_root("scatter", root, rank, size, output, input, bytes_per_rank);
  const auto* in = static_cast<const uint8_t*>(input);
  if (!needs_exchange(ctx, bytes_per_rank)) {
    if (rank == root) {
      copy_bytes(output, in + static_cast<size_t>(rank) * bytes_per_rank, bytes_per_rank);
    }
    return;
  }
  Exchange ex(ctx, "scatter");
  exchange_blocks_with_root(
      ex, root, bytes_per_rank,
      [&](int peer) {
        ex.send(peer, 0, in + static_cast<size_t>(peer) * bytes_per_rank, bytes_per_rank);
      },
      [&] { ex.recv(root, 0, output, bytes_per_rank); });
  // After the sends: the root's own block may alias its output.
  if (rank == root) {
    copy_bytes(output, in + static_cast<size_t>(rank) * bytes_per_rank, bytes_per_rank);
  }
}

}  // namespace torchwan::engine
