// Reduce-scatter, allgather and allreduce among ranks that share one host, through
// HostSharedMemory. The buffer is laid out in one segment per rank (a RingLayout, the same as the
// ring's, so a host whose memory cannot be shared runs the ring instead and ends with the same
// segments). The segments go through in rounds: a round moves one slot's worth, an equal piece of
// every segment.
//
// Reduce-scatter round: every rank copies its pieces into its own slot; after a barrier each rank
// reduces its own segment's piece from every rank's slot and writes it into its buffer. Allgather
// round: every rank copies its own segment's piece into its slot; after a barrier each copies the
// other ranks' pieces out. Each segment is reduced by one rank only, in a fixed order, so results
// are bit-identical on every rank and from run to run. Per rank that is about three passes over
// the buffer in memory, against two kernel copies per byte (and the protocol work) on every one
// of a socket ring's 2(P-1) steps.
//
// Slots alternate between rounds. A rank writes a slot again two rounds later, after the barrier
// of the round in between, which no rank passes before it has finished reading that slot. A last
// barrier after each pass keeps the next pass (or call) from writing a slot a peer still reads.
#include <algorithm>
#include <cstring>

#include "csrc/algorithms.h"
#include "csrc/host_shared_memory.h"
#include "csrc/reduce.h"
#include "csrc/shared_memory_algorithms.h"

namespace torchwan::engine {
namespace {

// The bytes of every segment that one round moves: a slot holds one such piece per rank.
size_t piece_bytes(int size, size_t element_bytes) {
  return HostSharedMemory::kSlotBytes / static_cast<size_t>(size) / element_bytes * element_bytes;
}

size_t rounds_for(const RingLayout& layout, size_t piece) {
  const size_t longest = *std::max_element(layout.length.begin(), layout.length.end());
  return (longest + piece - 1) / piece;
}

// Bytes of segment `segment` that round `round` moves.
size_t piece_length(const RingLayout& layout, int segment, size_t round, size_t piece) {
  const size_t length = layout.length[static_cast<size_t>(segment)];
  const size_t start = round * piece;
  return start >= length ? 0 : std::min(piece, length - start);
}

// A mismatched call (another count or dtype on some rank) must leave the caller's buffer as it
// was: wait until every peer's signature has arrived and agrees.
void wait_for_agreement(Exchange& ex) {
  for (;;) {
    const uint64_t seen = ex.completions();
    if (ex.signatures_agree()) return;
    ex.wait_for_completion(seen);
  }
}

}  // namespace

void shared_memory_reduce_scatter(Exchange& ex, const HostSharedMemory& memory, uint8_t* data,
                                  const RingLayout& layout, DataType dtype, ReduceOp op) {
  const int size = ex.size();
  const int rank = ex.rank();
  const size_t element_bytes = element_size(dtype);
  const size_t piece = piece_bytes(size, element_bytes);
  const size_t rounds = rounds_for(layout, piece);
  const size_t own_offset = static_cast<size_t>(rank) * piece;
  uint32_t step = 0;
  for (size_t round = 0; round < rounds; ++round) {
    const int slot = static_cast<int>(round % HostSharedMemory::kSlots);
    uint8_t* own = memory.slot(rank, slot);
    for (int segment = 0; segment < size; ++segment) {
      std::memcpy(own + static_cast<size_t>(segment) * piece,
                  data + layout.offset[static_cast<size_t>(segment)] + round * piece,
                  piece_length(layout, segment, round, piece));
    }
    direct_barrier(ex, ++step);
    const size_t length = piece_length(layout, rank, round, piece);
    if (length > 0) {
      for (int peer = 0; peer < size; ++peer) {
        if (peer == rank) continue;
        reduce_into(dtype, op, own + own_offset, memory.slot(peer, slot) + own_offset,
                    length / element_bytes);
      }
      if (round == 0) wait_for_agreement(ex);
      std::memcpy(data + layout.offset[static_cast<size_t>(rank)] + round * piece, own + own_offset,
                  length);
    }
  }
  direct_barrier(ex, ++step);
}

void shared_memory_allgather(Exchange& ex, const HostSharedMemory& memory, uint8_t* data,
                             const RingLayout& layout) {
  const int size = ex.size();
  const int rank = ex.rank();
  // Pieces are a whole number of elements of any type: 16 bytes covers the widest (complex128).
  const size_t piece = piece_bytes(size, 16);
  const size_t rounds = rounds_for(layout, piece);
  // Steps after any reduce-scatter of the same call (at most 2^14 rounds of a slot each).
  uint32_t step = 0x2000;
  wait_for_agreement(ex);
  for (size_t round = 0; round < rounds; ++round) {
    const int slot = static_cast<int>(round % HostSharedMemory::kSlots);
    std::memcpy(memory.slot(rank, slot) + static_cast<size_t>(rank) * piece,
                data + layout.offset[static_cast<size_t>(rank)] + round * piece,
                piece_length(layout, rank, round, piece));
    direct_barrier(ex, ++step);
    for (int owner = 0; owner < size; ++owner) {
      if (owner == rank) continue;
      std::memcpy(data + layout.offset[static_cast<size_t>(owner)] + round * piece,
                  memory.slot(owner, slot) + static_cast<size_t>(owner) * piece,
                  piece_length(layout, owner, round, piece));
    }
  }
  direct_barrier(ex, ++step);
}

void shared_memory_allreduce(Exchange& ex, const HostSharedMemory& memory, uint8_t* data,
                             size_t count, DataType dtype, ReduceOp op) {
  const RingLayout layout = balanced_ring_layout(count, element_size(dtype), ex.size());
  shared_memory_reduce_scatter(ex, memory, data, layout, dtype, op);
  shared_memory_allgather(ex, memory, data, layout);
}

}  // namespace torchwan::engine
