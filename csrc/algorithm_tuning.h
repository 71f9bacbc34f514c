// The thresholds and pipeline sizes the algorithms choose by. All ranks must use the same values
// (they decide message boundaries and tags), so they are compile-time constants.
#pragma once

#include <cstddef>

namespace torchwan::engine {

// The thresholds below decide where no round trip was measured (no RTT matrix: labels, a flat
// topology, two ranks). Where one was, the cost model (cost_model.h) chooses instead.
//
// Allreduce of fewer bytes than this uses recursive doubling: ceil(log2 P) (+2 when P is not a
// power of two) message latencies instead of the ring's 2(P-1); below it, where the P-1 copies a
// rank sends stay under the same limit, the direct exchange takes one latency. At 20-300 ms RTT
// latency is all that matters for such messages; above it the ring's bandwidth optimality wins.
inline constexpr size_t kSmallAllreduceMaxBytes = size_t{64} << 10;

// Where round trips were measured (Topology::max_rtt_ms), recursive doubling keeps winning far
// above kSmallAllreduceMaxBytes: on P ranks it costs log2 P latencies a plus log2 P message times
// S/B, the ring 2(P-1) latencies plus 2(P-1)/P message times, so it is faster up to about
// S = 8 a B (P = 4 to 8): 25 MB at 50 ms RTT and 1 Gbit/s. Counting on only 1 Gbit/s and taking
// half of that keeps it from hurting slower links much; the ceiling bounds the loss on a link
// slower still (15% at 4 MiB, 8 ranks, 100 Mbit/s, 50 ms) while gaining 2.3x at 1 Gbit/s.
inline constexpr size_t kSmallAllreduceBytesPerRttMs = size_t{256} << 10;
inline constexpr size_t kSmallAllreduceCeilingBytes = size_t{4} << 20;
// Allreduce (and broadcast, counting the root's P-1 copies) of fewer bytes than this is
// latency-bound on links of `max_rtt_ms` (0: not measured, kSmallAllreduceMaxBytes).
size_t latency_bound_max_bytes(double max_rtt_ms);

// With a topology of several regions, allreduce goes through the regions from this many bytes.
// Below kSmallAllreduceMaxBytes it reduces to one leader per region, runs recursive doubling among
// the leaders and broadcasts back: ceil(log2 R) WAN latencies for R regions instead of the flat
// ceil(log2 P), at the price of a few intra-region hops, which are cheap next to a WAN RTT. So it
// pays at every size; the knob is here for deployments whose "regions" are not that far apart.
inline constexpr size_t kHierarchicalAllreduceMinBytes = 1;

// Hierarchical allreduce of at least this many bytes over equally sized regions is striped:
// reduce-scatter inside each region, one allreduce per shard across regions (every member's WAN
// link carries 1/m of the data at once), allgather inside. Below it the leader scheme's fewer
// message latencies win.
inline constexpr size_t kStripedAllreduceMinBytes = kSmallAllreduceMaxBytes;

// Allreduce among ranks of one host goes through shared memory from this many bytes. Its three
// barriers per chunk cost three latencies of the local transport, which the direct exchange beats
// below this size; above it, the saved socket copies win.
inline constexpr size_t kSharedMemoryAllreduceMinBytes = kSmallAllreduceMaxBytes;

// Broadcast whose root copies (P-1 times the message) stay under latency_bound_max_bytes goes
// directly from the root to every rank: one latency, where the binomial tree takes log2 P.
// Broadcast of fewer bytes than this uses a binomial tree (log2 P hops, the root sends log2 P
// copies); larger ones a pipelined chain (P-1 hops of one chunk, every link carries the data
// once). With a WAN hop latency a and link time b per byte, the chain wins above about
// (P-2) a / ((log2 P - 1) b): 6-15 MB at 50 ms RTT and 1 Gbit/s, far less on a LAN.
inline constexpr size_t kTreeBroadcastMaxBytes = size_t{4} << 20;

// Reduce to a root is broadcast run backwards, with the same trade-off: a binomial tree (log2 P
// hops of the whole message) below this, a pipelined chain (every link carries the data once)
// above. The chain also beats a ring reduce-scatter followed by a gather to the root, whose root
// link carries 2(P-1)/P of the data against the chain's 1, at (P-1) more hop latencies.
inline constexpr size_t kTreeReduceMaxBytes = kTreeBroadcastMaxBytes;

// A direct barrier posts 2(P-1) messages per rank; beyond this many ranks the log2 P rounds of the
// dissemination barrier are taken whatever the latency.
inline constexpr int kDirectBarrierMaxRanks = 64;

// Pipelines cut each ring segment (or a broadcast buffer) into chunks of about
// 1/kTargetChunksPerSegment of it, clamped to [kMinChunkBytes, kMaxChunkBytes] (and never longer
// than the segment), so that sending, receiving and reducing overlap. The floor keeps per-message
// overhead small; the 4 MiB ceiling is the message size ZeroMQ and UCX move fastest on this kind
// of machine, and chunks of 1 MiB or more are striped over the transport's lanes.
inline constexpr size_t kMinChunkBytes = size_t{256} << 10;
inline constexpr size_t kMaxChunkBytes = size_t{4} << 20;
inline constexpr size_t kTargetChunksPerSegment = 4;

// Chunks each rank keeps in flight per direction (and staging buffers it allocates for them):
// up to 32 MiB outstanding, enough to fill a 50 ms x 5 Gbit/s bandwidth-delay product.
inline constexpr size_t kMaxChunksInFlight = 8;

// Bytes per pipeline chunk for a segment of `segment_bytes` holding elements of `element_bytes`:
// a whole number of elements, never less than one.
size_t pipeline_chunk_bytes(size_t segment_bytes, size_t element_bytes);

}  // namespace torchwan::engine
