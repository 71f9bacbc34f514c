// The time each algorithm of the table is predicted to take, from what every rank of a group
// knows alike: the message size, the world size and the group's slowest measured round trip
// (Topology::max_rtt_ms), with a link rate and per-message costs that are documented constants
// (nothing measures them yet). Where round trips were measured, the algorithm table picks the
// algorithm this model predicts fastest; the benchmarks print the prediction beside the measured
// time (bench/collectives), so a reader sees how far the model is off.
//
// Each rank sends through its own uplink of `bytes_per_s` (receiving is not the bottleneck), a
// message reaches its peer one one-way delay after its last byte left, and the P-1 messages a
// rank posts at once leave one after another. Formulas per algorithm are in cost_model.cc.
#pragma once

#include <cstddef>
#include <optional>

#include "csrc/algorithm_table.h"

namespace torchwan::engine {

// The link rate the model assumes for one rank's uplink: 1 Gbit/s, the WAN lab's and a common
// cloud instance's (nothing measures the rate when a group is created). A faster link only makes
// the one-step algorithms look costlier than they are, so they are chosen for fewer sizes.
inline constexpr double kAssumedLinkBytesPerSecond = 1e9 / 8;

// Software time a rank spends per message it sends (posting, copying through the transport,
// completing), paid one message after another. 0.4 ms is what the wan-8 4 KiB direct allreduce
// shows beyond its one-way delay: 8 ranks on one 2-core machine, 7 messages each. A dedicated host
// spends less; at WAN latencies the choice hardly depends on it.
inline constexpr double kMessageOverheadSeconds = 0.4e-3;

// Bytes per second one rank folds into a float32 sum on a busy core; the reduction in the ring
// overlaps the network and is not counted there.
inline constexpr double kReduceBytesPerSecond = 1e9;

// In a direct allreduce, allgather or reduce-scatter (and in each step of a two-step allreduce)
// every rank posts its P-1 copies at once, so
// all hosts burst together; bursts past the network's buffers are dropped and wait for
// retransmission, which the model does not describe. On wan-8 (50 ms, 1 Gbit/s, 50 ms of queue)
// a 1 MiB direct allreduce (7 MiB per rank) took 276-363 ms against recursive doubling's 169 ms.
// So those direct exchanges are candidates only while a rank's P-1 copies stay within this (the
// ceiling the size thresholds used before the model); a broadcast's root bursts alone.
inline constexpr size_t kDirectBurstMaxBytes = size_t{4} << 20;

struct LinkModel {
  double one_way_s = 0;  // the slowest pair's one-way delay: half its round trip
  double bytes_per_s = kAssumedLinkBytesPerSecond;
  double message_overhead_s = kMessageOverheadSeconds;
  double reduce_bytes_per_s = kReduceBytesPerSecond;
};

// The model of a group whose slowest round trip is `max_rtt_ms`, with the constants above.
LinkModel link_model(double max_rtt_ms);

// Predicted seconds of one call of `algorithm` for `collective` on `size` ranks. `bytes` is what
// SelectionInputs::bytes holds: the buffer (allreduce, broadcast, reduce) or one rank's block
// (allgather, reduce-scatter); barrier ignores it. nullopt for the tiers the model does not
// describe (hierarchical, hosts, shared memory) and for algorithms of another collective.
std::optional<double> predict_seconds(Collective collective, Algorithm algorithm, size_t bytes,
                                      int size, const LinkModel& link);

// The algorithm of `collective` (among the table's, skipping those the model does not describe
// and those ruled out by size: a symmetric direct exchange over kDirectBurstMaxBytes per rank, a
// direct barrier over 64 ranks) with the least predicted time; on a tie, the earlier in the table.
// Pure arithmetic on its arguments, so equal inputs give the same choice on every rank.
Algorithm cheapest_algorithm(Collective collective, size_t bytes, int size, const LinkModel& link);

}  // namespace torchwan::engine
