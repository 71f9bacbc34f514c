// Collective algorithms on byte buffers over a Transport. Each call is synchronous on the calling
// thread, drives many transport requests at once, and throws a TransportError (naming the op, the
// peer and the cause) if any request fails or the deadline passes; pending requests are canceled
// before it returns, so the caller may free its buffers.
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <span>
#include <string>

#include "csrc/dtype.h"
#include "transport/transport.h"

namespace torchwan::engine {

class AlgorithmOverrides;

// What one rank believes the current call is. When a context carries one, the collective checks
// it against every other rank's, overlapped with the data transfer (no extra round trip), and a
// disagreement (different collective, dtype, element count, op or root) fails the call on every
// rank with an error naming both sides, instead of hanging or returning a wrong answer.
struct CallSignature {
  uint8_t kind = 0;    // caller-defined collective code (e.g. c10d::OpType)
  uint8_t dtype = 0;   // caller-defined dtype code
  uint8_t op = 0;      // reduce op code, 0 when none
  int32_t root = -1;   // root rank, -1 when none
  uint64_t count = 0;  // elements (or bytes) this rank contributes
  // Human-readable form for error messages, e.g. "allreduce(float32 x 1000, SUM)".
  std::string describe;
};

struct Topology;         // csrc/topology.h
class ScratchPool;       // csrc/scratch_pool.h
class HostSharedMemory;  // csrc/host_shared_memory.h

// Identifies one collective call: every rank of the group passes the same `seq` for the same call.
struct CollectiveContext {
  transport::Transport& transport;
  uint32_t seq;
  std::chrono::steady_clock::time_point deadline;
  const CallSignature* signature = nullptr;  // checked across ranks when set
  // The group's regions, identical on every rank (built once per group from exchanged inputs, see
  // topology.h). With more than one region (and fewer regions than ranks), allreduce of at least
  // kHierarchicalAllreduceMinBytes goes through the regions (hierarchical.h). Must outlive the
  // call; a topology of another size fails the call with std::invalid_argument on every rank.
  const Topology* topology = nullptr;
  // Where the call's large temporaries come from (kept between calls); null: fresh memory.
  ScratchPool* scratch_pool = nullptr;
  // Algorithms forced per collective (algorithm_table.h); null or empty: automatic choice. Must
  // be the same on every rank.
  const AlgorithmOverrides* algorithms = nullptr;
  // The group's shared memory, when every rank runs on one host (topology->one_host()): large
  // allreduces then go through it. Kept between calls; null: never.
  HostSharedMemory* host_memory = nullptr;
};
// With a signature (and more than one rank):
// - the error is a TransportError of kind kMismatch, e.g. "allreduce (seq 7, rank 0 of 3) failed
//   with peer 2: call mismatch: rank 2 called allreduce(float32 x 999, SUM) but rank 0 called
//   allreduce(float32 x 1000, SUM)", using each side's `describe` (cut to 87 printable ASCII
//   characters on the wire; the raw fields are named too when both texts are equal);
// - a call returns only once every rank has entered it (each rank must have every peer's
//   signature), so e.g. a broadcast root or a gather sender no longer returns before the others
//   arrive, and zero-byte calls still exchange signatures;
// - alltoallv compares kind, dtype, op and root, and instead of `count` the bytes each pair of
//   ranks agreed to move; a pair that disagrees fails on both ranks of the pair (the other ranks
//   cannot see it and may wait for their deadline or fail as canceled);
// - `seq` must still agree: calls with different sequence numbers never see each other.
// The signature messages use step 0xffff of the call's tag space; see exchange.h.

// Tags (below 2^32, a group's space): collectives use [seq:15][step:16] (bit 31 clear);
// point-to-point user messages set bit 31 and carry the user's tag (0 <= tag < 2^31).
transport::Tag collective_tag(uint32_t seq, uint32_t step);
transport::Tag p2p_tag(uint32_t user_tag);

// In place: every rank ends with the reduction over all ranks of its `count` elements.
void allreduce(const CollectiveContext& ctx, void* data, size_t count, DataType dtype, ReduceOp op);
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

// In place on root: root's `data` ends with the reduction over all ranks; other ranks' `data` is
// left unchanged.
void reduce(const CollectiveContext& ctx, void* data, size_t count, DataType dtype, ReduceOp op,
            int root);
// Root's `output` (size * bytes_per_rank; ignored elsewhere) receives every rank's `input` in rank
// order.
void gather(const CollectiveContext& ctx, const void* input, void* output, size_t bytes_per_rank,
            int root);
// Every rank's `output` receives block `rank` of root's `input` (size * bytes_per_rank; ignored
// elsewhere).
void scatter(const CollectiveContext& ctx, const void* input, void* output, size_t bytes_per_rank,
             int root);
// Uneven all-to-all: this rank sends send_bytes[p] bytes from input + send_offsets[p] to rank p
// and receives recv_bytes[p] bytes into output + recv_offsets[p] from rank p. Each span has one
// entry per rank. A sender's send_bytes[p] must equal p's recv_bytes[sender]; a disagreement is
// reported as a size mismatch naming both ranks. Empty blocks are sent as empty messages (so that
// disagreement is detected too); buffers may be null when all their blocks are empty. A rank whose
// send_bytes[rank] differs from recv_bytes[rank] gets std::invalid_argument (on that rank only).
void alltoallv(const CollectiveContext& ctx, const void* input,
               std::span<const size_t> send_offsets, std::span<const size_t> send_bytes,
               void* output, std::span<const size_t> recv_offsets,
               std::span<const size_t> recv_bytes);

}  // namespace torchwan::engine
