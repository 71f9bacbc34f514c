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

// A chain from the root to the last rank: the root sends every byte once, and the last chunk
// then crosses P-1 hops, each a one-way delay and (past the first) the chunk's own time.
double chain(const Terms& t, int size, size_t bytes, double per_hop_extra) {
  const auto chunk =
      static_cast<double>(pipeline_chunk_bytes(bytes / static_cast<size_t>(size), 1));
  return t.wire(static_cast<double>(bytes)) + (size - 1) * (t.a + t.o + per_hop_extra) +
         (size - 2) * t.wire(chunk);
}

std::optional<double> allreduce(Algorithm algorithm, const Terms& t, size_t bytes, int size) {
  const auto s = static_cast<double>(bytes);
  const int peers = size - 1;
  switch (algorithm) {
    case Algorithm::kDirectAllreduce:
      // P-1 copies leave one after another; then P-1 buffers are folded in rank order.
      return t.a + peers * (t.wire(s) + t.o) + peers * t.fold(s);
    case Algorithm::kRecursiveDoubling:
      return doubling_rounds(size) * (t.a + t.wire(s) + t.o + t.fold(s));
    case Algorithm::kRing: {
      const size_t segment = (bytes + static_cast<size_t>(size) - 1) / static_cast<size_t>(size);
      return pipelined_ring(t, 2 * peers, static_cast<double>(segment), ring_chunk(segment));
    }
    default:
      return std::nullopt;
  }
}

std::optional<double> broadcast(Algorithm algorithm, const Terms& t, size_t bytes, int size) {
  const auto s = static_cast<double>(bytes);
  switch (algorithm) {
    case Algorithm::kDirect:
      return t.a + (size - 1) * (t.wire(s) + t.o);
    case Algorithm::kBinomialTree:
      // Every level's first send lies on the path to the deepest rank.
      return ceil_log2(size) * (t.a + t.wire(s) + t.o);
    case Algorithm::kChain:
      return chain(t, size, bytes, 0);
    default:
      return std::nullopt;
  }
}

std::optional<double> reduce(Algorithm algorithm, const Terms& t, size_t bytes, int size) {
  const auto s = static_cast<double>(bytes);
  switch (algorithm) {
    case Algorithm::kBinomialTree:
      return ceil_log2(size) * (t.a + t.wire(s) + t.o + t.fold(s));
    case Algorithm::kChain: {
      const auto chunk =
          static_cast<double>(pipeline_chunk_bytes(bytes / static_cast<size_t>(size), 1));
      return chain(t, size, bytes, t.fold(chunk));
    }
    default:
      return std::nullopt;
  }
}

// Allgather and reduce-scatter over blocks of `block` bytes (the reduce-scatter folds P-1 of
// them on every rank).
std::optional<double> blocks(Algorithm algorithm, const Terms& t, size_t block, int size,
                             bool folds) {
  const auto b = static_cast<double>(block);
  const int peers = size - 1;
  switch (algorithm) {
    case Algorithm::kDirect:
      return t.a + peers * (t.wire(b) + t.o) + (folds ? peers * t.fold(b) : 0.0);
    case Algorithm::kRing:
      return pipelined_ring(t, peers, b, ring_chunk(block));
    default:
      return std::nullopt;
  }
}

std::optional<double> barrier(Algorithm algorithm, const Terms& t, int size) {
  switch (algorithm) {
    case Algorithm::kDirect:
      return t.a + (size - 1) * t.o;
    case Algorithm::kDissemination:
      return ceil_log2(size) * (t.a + t.o);
    default:
      return std::nullopt;
  }
}

bool ruled_out(Collective collective, Algorithm algorithm, size_t bytes, int size) {
  const bool symmetric_direct =
      (collective == Collective::kAllreduce && algorithm == Algorithm::kDirectAllreduce) ||
      ((collective == Collective::kAllgather || collective == Collective::kReduceScatter) &&
       algorithm == Algorithm::kDirect);
  if (symmetric_direct) return bytes > kDirectBurstMaxBytes / static_cast<size_t>(size - 1);
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
  switch (collective) {
    case Collective::kAllreduce:
      return allreduce(algorithm, t, bytes, size);
    case Collective::kBroadcast:
      return broadcast(algorithm, t, bytes, size);
    case Collective::kReduce:
      return reduce(algorithm, t, bytes, size);
    case Collective::kAllgather:
      return blocks(algorithm, t, bytes, size, false);
    case Collective::kReduceScatter:
      return blocks(algorithm, t, bytes, size, true);
    case Collective::kBarrier:
      return barrier(algorithm, t, size);
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
