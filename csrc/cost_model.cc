#include "csrc/cost_model.h"

#include <algorithm>
#include <bit>

#include "csrc/algorithm_tuning.h"

namespace torchwan::engine {
namespace {

// The model's terms for one call: a one-way delay `a`, a message of `s` bytes on the uplink
// (s / rate), a message's software time `o`, and folding `s` bytes into a sum.
struct Terms {
  double a;
  double rate;
  double o;
  double reduce_rate;
  double wire(double s) const { return s / rate; }
  double fold(double s) const { return s / reduce_rate; }
};

int ceil_log2(int size) { return std::bit_width(static_cast<unsigned>(size - 1)); }

// Rounds of recursive doubling: log2 of the largest power of two in P, and two more (hand the
// data to a partner, get the result back) when P is not a power of two.
int doubling_rounds(int size) {
  const auto p = static_cast<unsigned>(size);
  return std::bit_width(p) - 1 + (std::has_single_bit(p) ? 0 : 2);
}

// A pipelined ring of `steps` steps, each moving one segment of `segment` bytes cut into chunks
// of `chunk`: a chunk may go on once the same chunk of the step before has arrived. While a
// segment takes longer on the link than a chunk's trip (a + chunk time), the uplink never idles
// and the call costs every step's bytes plus one trip; otherwise every step waits for the trip.
double pipelined_ring(const Terms& t, int steps, double segment, double chunk) {
  const double per_step = std::max(t.wire(segment), t.a + t.wire(chunk) + t.o);
  return (steps - 1) * per_step + t.wire(segment) + t.a + t.o;
}

// The chunk ring.cc's finish_layout cuts a segment of `segment` bytes into (element size 1).
double ring_chunk(size_t segment) {
  return static_cast<double>(std::min(pipeline_chunk_bytes(segment, 1), segment));
}

// The chunk broadcast_algorithms.cc and reduce_algorithms.cc cut a chain's message into.
double chunk_of_chain(size_t bytes, int size) {
  return static_cast<double>(pipeline_chunk_bytes(bytes / static_cast<size_t>(size), 1));
}

// A chain from the root to the last rank: the root sends every byte once, and the last chunk
// then crosses P-1 hops, each a one-way delay and (past the first) the chunk's own time.
double chain(const Terms& t, int size, size_t bytes, double per_hop_extra) {
  return t.wire(static_cast<double>(bytes)) + (size - 1) * (t.a + t.o + per_hop_extra) +
         (size - 2) * t.wire(chunk_of_chain(bytes, size));
}

// The largest segment a two-step allreduce of `bytes` cuts (the ring's balanced layout).
size_t two_step_segment(size_t bytes, int size) {
  const auto ranks = static_cast<size_t>(size);
  return (bytes + ranks - 1) / ranks;
}

// One call of `bytes` on `size` ranks (bytes as SelectionInputs counts them).
using Formula = double (*)(const Terms& t, size_t bytes, int size);

struct FormulaRow {
  Collective collective;
  Algorithm algorithm;
  Formula seconds;
};

double ring_over_segments(const Terms& t, int steps, size_t segment) {
  return pipelined_ring(t, steps, static_cast<double>(segment), ring_chunk(segment));
}

// Every modelled algorithm's time. P-1 copies posted at once leave one after another; folds of
// P-1 buffers are in rank order on the rank that reduces.
constexpr FormulaRow kFormulas[] = {
    {Collective::kAllreduce, Algorithm::kDirectAllreduce,
     [](const Terms& t, size_t bytes, int size) {
       const auto s = static_cast<double>(bytes);
       return t.a + (size - 1) * (t.wire(s) + t.o + t.fold(s));
     }},
    // Two rounds of P-1 messages of a segment, and one fold of the P-1 copies of its own.
    {Collective::kAllreduce, Algorithm::kTwoStep,
     [](const Terms& t, size_t bytes, int size) {
       const auto segment = static_cast<double>(two_step_segment(bytes, size));
       return 2 * t.a + 2 * (size - 1) * (t.wire(segment) + t.o) + (size - 1) * t.fold(segment);
     }},
    {Collective::kAllreduce, Algorithm::kRecursiveDoubling,
     [](const Terms& t, size_t bytes, int size) {
       const auto s = static_cast<double>(bytes);
       return doubling_rounds(size) * (t.a + t.wire(s) + t.o + t.fold(s));
     }},
    {Collective::kAllreduce, Algorithm::kRing,
     [](const Terms& t, size_t bytes, int size) {
       const auto ranks = static_cast<size_t>(size);
       return ring_over_segments(t, 2 * (size - 1), (bytes + ranks - 1) / ranks);
     }},
    {Collective::kBroadcast, Algorithm::kDirect,
     [](const Terms& t, size_t bytes, int size) {
       return t.a + (size - 1) * (t.wire(static_cast<double>(bytes)) + t.o);
     }},
    // Every level's first send lies on the path to the deepest rank.
    {Collective::kBroadcast, Algorithm::kBinomialTree,
     [](const Terms& t, size_t bytes, int size) {
       return ceil_log2(size) * (t.a + t.wire(static_cast<double>(bytes)) + t.o);
     }},
    {Collective::kBroadcast, Algorithm::kChain,
     [](const Terms& t, size_t bytes, int size) { return chain(t, size, bytes, 0); }},
    {Collective::kReduce, Algorithm::kBinomialTree,
     [](const Terms& t, size_t bytes, int size) {
       const auto s = static_cast<double>(bytes);
       return ceil_log2(size) * (t.a + t.wire(s) + t.o + t.fold(s));
     }},
    {Collective::kReduce, Algorithm::kChain,
     [](const Terms& t, size_t bytes, int size) {
       return chain(t, size, bytes, t.fold(chunk_of_chain(bytes, size)));
     }},
    {Collective::kAllgather, Algorithm::kDirect,
     [](const Terms& t, size_t block, int size) {
       return t.a + (size - 1) * (t.wire(static_cast<double>(block)) + t.o);
     }},
    {Collective::kAllgather, Algorithm::kRing,
     [](const Terms& t, size_t block, int size) { return ring_over_segments(t, size - 1, block); }},
    {Collective::kReduceScatter, Algorithm::kDirect,
     [](const Terms& t, size_t block, int size) {
       const auto b = static_cast<double>(block);
       return t.a + (size - 1) * (t.wire(b) + t.o + t.fold(b));
     }},
    {Collective::kReduceScatter, Algorithm::kRing,
     [](const Terms& t, size_t block, int size) { return ring_over_segments(t, size - 1, block); }},
    {Collective::kBarrier, Algorithm::kDirect,
     [](const Terms& t, size_t, int size) { return t.a + (size - 1) * t.o; }},
    {Collective::kBarrier, Algorithm::kDissemination,
     [](const Terms& t, size_t, int size) { return ceil_log2(size) * (t.a + t.o); }},
};

bool ruled_out(Collective collective, Algorithm algorithm, size_t bytes, int size) {
  const bool symmetric_direct =
      (collective == Collective::kAllreduce && algorithm == Algorithm::kDirectAllreduce) ||
      ((collective == Collective::kAllgather || collective == Collective::kReduceScatter) &&
       algorithm == Algorithm::kDirect);
  if (symmetric_direct) return bytes > kDirectBurstMaxBytes / static_cast<size_t>(size - 1);
  if (collective == Collective::kAllreduce && algorithm == Algorithm::kTwoStep) {
    return two_step_segment(bytes, size) > kDirectBurstMaxBytes / static_cast<size_t>(size - 1);
  }
  if (collective == Collective::kBarrier && algorithm == Algorithm::kDirect) {
    return size > kDirectBarrierMaxRanks;
  }
  return false;
}

}  // namespace

LinkModel link_model(double max_rtt_ms) {
  LinkModel link;
  link.one_way_s = max_rtt_ms > 0 ? max_rtt_ms / 2 / 1000 : 0;
  return link;
}

std::optional<double> predict_seconds(Collective collective, Algorithm algorithm, size_t bytes,
                                      int size, const LinkModel& link) {
  if (size < 2) return 0.0;
  const Terms t{link.one_way_s, link.bytes_per_s, link.message_overhead_s, link.reduce_bytes_per_s};
  for (const FormulaRow& row : kFormulas) {
    if (row.collective == collective && row.algorithm == algorithm) {
      return row.seconds(t, bytes, size);
    }
  }
  return std::nullopt;
}

Algorithm cheapest_algorithm(Collective collective, size_t bytes, int size, const LinkModel& link) {
  std::optional<Algorithm> best;
  double best_seconds = 0;
  for (const AlgorithmInfo& info : algorithm_table()) {
    if (info.collective != collective || ruled_out(collective, info.algorithm, bytes, size)) {
      continue;
    }
    const std::optional<double> seconds =
        predict_seconds(collective, info.algorithm, bytes, size, link);
    if (seconds && (!best || *seconds < best_seconds)) {
      best = info.algorithm;
      best_seconds = *seconds;
    }
  }
  // Every collective has at least one modelled algorithm that nothing rules out.
  return *best;
}

}  // namespace torchwan::engine
