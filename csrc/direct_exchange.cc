// The direct (one-step) algorithms: every rank talks straight to every other rank in a single
// round, so a call costs one message latency whatever the world size, at (P-1)x the bytes of the
// ring. They are chosen for latency-bound sizes (algorithm_table.cc). Reductions fold the P
// contributions in rank order 0..P-1 on the rank that reduces, the same operations in the same
// order everywhere, so results are bit-identical on every rank.
#include <cstring>

#include "csrc/algorithms.h"
#include "csrc/reduce.h"
#include "csrc/ring.h"

namespace torchwan::engine {

namespace {

// Slot 0 becomes slot 0 op slot 1 op ... op slot P-1, folded left in rank order, in place.
void fold_in_rank_order(uint8_t* slots, size_t bytes, int size, size_t count, DataType dtype,
                        ReduceOp op) {
  for (int r = 1; r < size; ++r) {
    reduce_into(dtype, op, slots, slots + static_cast<size_t>(r) * bytes, count);
  }
}

}  // namespace

void direct_allreduce(Exchange& ex, uint8_t* data, size_t count, DataType dtype, ReduceOp op) {
  const int size = ex.size();
  const int rank = ex.rank();
  const size_t bytes = count * element_size(dtype);
  // Slot r holds rank r's buffer; our own goes in too, so the fold is the same everywhere.
  uint8_t* slots = ex.scratch(bytes * static_cast<size_t>(size));
  std::memcpy(slots + static_cast<size_t>(rank) * bytes, data, bytes);
  for (int peer = 0; peer < size; ++peer) {
    if (peer == rank) continue;
    ex.send(peer, 0, data, bytes);
    ex.recv(peer, 0, slots + static_cast<size_t>(peer) * bytes, bytes);
  }
  ex.wait_all();  // `data` is sent before it is overwritten
  fold_in_rank_order(slots, bytes, size, count, dtype, op);
  std::memcpy(data, slots, bytes);
}

void two_step_allreduce(Exchange& ex, uint8_t* data, size_t count, DataType dtype, ReduceOp op) {
  const int size = ex.size();
  const int rank = ex.rank();
  const size_t element = element_size(dtype);
  const RingLayout layout = balanced_ring_layout(count, element, size);
  const auto mine = static_cast<size_t>(rank);
  const size_t own_bytes = layout.length[mine];
  // With fewer elements than ranks some segments are empty; their zero-length messages still go,
  // so every rank posts the same exchanges, and they need a valid address.
  auto segment = [&](size_t r) { return data + layout.offset[r]; };

  // Step 0: slot r receives rank r's copy of this rank's segment (all at `data` when it is empty).
  uint8_t* slots = own_bytes > 0 ? ex.scratch(own_bytes * static_cast<size_t>(size)) : data;
  if (own_bytes > 0) std::memcpy(slots + mine * own_bytes, segment(mine), own_bytes);
  for (int peer = 0; peer < size; ++peer) {
    if (peer == rank) continue;
    const auto p = static_cast<size_t>(peer);
    ex.send(peer, 0, segment(p), layout.length[p]);
    ex.recv(peer, 0, slots + p * own_bytes, own_bytes);
  }
  ex.wait_all();  // every segment has left before step 1 overwrites it
  if (own_bytes > 0) {
    fold_in_rank_order(slots, own_bytes, size, own_bytes / element, dtype, op);
    std::memcpy(segment(mine), slots, own_bytes);
  }

  // Step 1: every rank hands its reduced segment to every other.
  for (int peer = 0; peer < size; ++peer) {
    if (peer == rank) continue;
    const auto p = static_cast<size_t>(peer);
    ex.send(peer, 1, segment(mine), own_bytes);
    ex.recv(peer, 1, segment(p), layout.length[p]);
  }
  ex.wait_all();
}

void direct_allgather(Exchange& ex, uint8_t* out, size_t bytes_per_rank) {
  const int size = ex.size();
  const int rank = ex.rank();
  const uint8_t* mine = out + static_cast<size_t>(rank) * bytes_per_rank;
  for (int peer = 0; peer < size; ++peer) {
    if (peer == rank) continue;
    ex.send(peer, 0, mine, bytes_per_rank);
    ex.recv(peer, 0, out + static_cast<size_t>(peer) * bytes_per_rank, bytes_per_rank);
  }
  ex.wait_all();
}

void direct_reduce_scatter(Exchange& ex, const uint8_t* input, uint8_t* work, size_t count,
                           DataType dtype, ReduceOp op) {
  const int size = ex.size();
  const int rank = ex.rank();
  const size_t block = count * element_size(dtype);
  // Slot r of `work` receives rank r's contribution to this rank's block.
  std::memcpy(work + static_cast<size_t>(rank) * block, input + static_cast<size_t>(rank) * block,
              block);
  for (int peer = 0; peer < size; ++peer) {
    if (peer == rank) continue;
    ex.send(peer, 0, input + static_cast<size_t>(peer) * block, block);
    ex.recv(peer, 0, work + static_cast<size_t>(peer) * block, block);
  }
  ex.wait_all();
  fold_in_rank_order(work, block, size, count, dtype, op);  // the result lands in slot 0
}

void direct_barrier(Exchange& ex, uint32_t step) {
  uint8_t token = 0;  // zero-length messages still need a valid address for some transports
  for (int peer = 0; peer < ex.size(); ++peer) {
    if (peer == ex.rank()) continue;
    ex.send(peer, step, &token, 0);
    ex.recv(peer, step, &token, 0);
  }
  ex.wait_all();
}

}  // namespace torchwan::engine
