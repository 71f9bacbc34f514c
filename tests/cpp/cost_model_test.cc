// The cost model: its predictions for the WAN lab's cases, worked out by hand below from the
// formulas in cost_model.cc (50 ms RTT: a = 25 ms one way; 1 Gbit/s: a byte takes 8 ns; 0.4 ms per
// message; folding a byte 1 ns), and the choices they imply, through the algorithm table as a
// group with measured round trips makes them. Groups without measured round trips keep the size
// thresholds (algorithm_table_test.cc).
#include "csrc/cost_model.h"

#include <gtest/gtest.h>

#include <cstddef>
#include <vector>

#include "csrc/algorithm_table.h"
#include "csrc/topology.h"

namespace torchwan::engine {
namespace {

constexpr double kMs = 1e-3;
// Predictions are sums of a few terms; the hand figures below are exact to the nanosecond.
constexpr double kTolerance = 1e-9;

const LinkModel kLab = link_model(50);  // wan-8, wan-a: 50 ms RTT, 1 Gbit/s

double predicted(Collective collective, Algorithm algorithm, size_t bytes, int size,
                 const LinkModel& link = kLab) {
  const auto seconds = predict_seconds(collective, algorithm, bytes, size, link);
  EXPECT_TRUE(seconds.has_value());
  return seconds.value_or(-1);
}

TEST(CostModel, TheLinkComesFromTheMeasuredRoundTripAndTheConstants) {
  EXPECT_DOUBLE_EQ(kLab.one_way_s, 0.025);
  EXPECT_DOUBLE_EQ(kLab.bytes_per_s, 125e6);
  EXPECT_DOUBLE_EQ(link_model(0).one_way_s, 0);
}

TEST(CostModel, SmallAllreduceOnEightRanks) {
  // 4 KiB: 32.768 us on the wire, 4.096 us to fold.
  // direct: 25 ms + 7 x (32.768 us + 400 us) + 7 x 4.096 us = 28.058048 ms.
  EXPECT_NEAR(predicted(Collective::kAllreduce, Algorithm::kDirectAllreduce, 4096, 8),
              28.058048 * kMs, kTolerance);
  // recursive doubling: 3 rounds of 25 ms + 32.768 us + 400 us + 4.096 us = 76.310592 ms.
  EXPECT_NEAR(predicted(Collective::kAllreduce, Algorithm::kRecursiveDoubling, 4096, 8),
              76.310592 * kMs, kTolerance);
  // ring: 14 steps of one 512-byte chunk (4.096 us), each waiting for the trip:
  // 14 x (25 ms + 4.096 us + 400 us) = 355.657344 ms.
  EXPECT_NEAR(predicted(Collective::kAllreduce, Algorithm::kRing, 4096, 8), 355.657344 * kMs,
              kTolerance);
  EXPECT_EQ(cheapest_algorithm(Collective::kAllreduce, 4096, 8, kLab), Algorithm::kDirectAllreduce);
}

TEST(CostModel, LargeAllreduceOnFourRanksIsTheLinkRate) {
  // 256 MiB on 4 ranks: 64 MiB segments (536.870912 ms each) in 4 MiB chunks; the uplink never
  // idles, so 6 segments + 25 ms + 0.4 ms = 3246.625472 ms.
  EXPECT_NEAR(predicted(Collective::kAllreduce, Algorithm::kRing, size_t{256} << 20, 4),
              3246.625472 * kMs, kTolerance);
  // Recursive doubling: 2 rounds of 25 ms + 2147.483648 ms + 0.4 ms + 268.435456 ms.
  EXPECT_NEAR(
      predicted(Collective::kAllreduce, Algorithm::kRecursiveDoubling, size_t{256} << 20, 4),
      4882.638208 * kMs, kTolerance);
  EXPECT_EQ(cheapest_algorithm(Collective::kAllreduce, size_t{256} << 20, 4, kLab),
            Algorithm::kRing);
}

TEST(CostModel, FourRanksCrossFromDirectToDoublingToRing) {
  // 1 MiB (8.388608 ms on the wire, 1.048576 ms to fold):
  //   direct 25 + 3 x 8.788608 + 3 x 1.048576 = 54.511552 ms,
  //   doubling 2 x (25 + 8.388608 + 0.4 + 1.048576) = 69.674368 ms.
  EXPECT_NEAR(predicted(Collective::kAllreduce, Algorithm::kDirectAllreduce, size_t{1} << 20, 4),
              54.511552 * kMs, kTolerance);
  EXPECT_NEAR(predicted(Collective::kAllreduce, Algorithm::kRecursiveDoubling, size_t{1} << 20, 4),
              69.674368 * kMs, kTolerance);
  EXPECT_EQ(cheapest_algorithm(Collective::kAllreduce, size_t{1} << 20, 4, kLab),
            Algorithm::kDirectAllreduce);
  // 4 MiB: direct 25 + 3 x 33.954432 + 3 x 4.194304 = 139.446208 ms; doubling
  // 2 x (25 + 33.554432 + 0.4 + 4.194304) = 126.297472 ms; ring: 1 MiB segments in 256 KiB chunks
  // wait for the trip, 5 x (25 + 2.097152 + 0.4) + 8.388608 + 25.4 = 171.274368 ms.
  EXPECT_NEAR(predicted(Collective::kAllreduce, Algorithm::kRing, size_t{4} << 20, 4),
              171.274368 * kMs, kTolerance);
  EXPECT_EQ(cheapest_algorithm(Collective::kAllreduce, size_t{4} << 20, 4, kLab),
            Algorithm::kRecursiveDoubling);
  // 8 MiB: doubling 2 x (25 + 67.108864 + 0.4 + 8.388608) = 201.794944 ms; ring: 2 MiB segments
  // in 512 KiB chunks, 5 x (25 + 4.194304 + 0.4) + 16.777216 + 25.4 = 190.148736 ms.
  EXPECT_NEAR(predicted(Collective::kAllreduce, Algorithm::kRing, size_t{8} << 20, 4),
              190.148736 * kMs, kTolerance);
  EXPECT_EQ(cheapest_algorithm(Collective::kAllreduce, size_t{8} << 20, 4, kLab), Algorithm::kRing);
}

TEST(CostModel, BroadcastAllgatherReduceScatterAndBarrier) {
  // Broadcast of 1 MiB on 8 ranks: direct 25 + 7 x 8.788608 = 86.520256 ms; tree
  // 3 x 33.788608 = 101.365824 ms; chain in 256 KiB chunks 8.388608 + 7 x 25.4 + 6 x 2.097152 =
  // 198.77152 ms.
  EXPECT_NEAR(predicted(Collective::kBroadcast, Algorithm::kDirect, size_t{1} << 20, 8),
              86.520256 * kMs, kTolerance);
  EXPECT_NEAR(predicted(Collective::kBroadcast, Algorithm::kBinomialTree, size_t{1} << 20, 8),
              101.365824 * kMs, kTolerance);
  EXPECT_NEAR(predicted(Collective::kBroadcast, Algorithm::kChain, size_t{1} << 20, 8),
              198.77152 * kMs, kTolerance);
  EXPECT_EQ(cheapest_algorithm(Collective::kBroadcast, size_t{1} << 20, 8, kLab),
            Algorithm::kDirect);
  // 64 MiB: the chain (2 MiB chunks) 536.870912 + 177.8 + 6 x 16.777216 = 815.334208 ms beats
  // the tree's 3 x 562.270912 ms.
  EXPECT_NEAR(predicted(Collective::kBroadcast, Algorithm::kChain, size_t{64} << 20, 8),
              815.334208 * kMs, kTolerance);
  EXPECT_EQ(cheapest_algorithm(Collective::kBroadcast, size_t{64} << 20, 8, kLab),
            Algorithm::kChain);
  // Allgather of 128 KiB blocks (1 MiB gathered) on 8 ranks: 25 + 7 x (1.048576 + 0.4) =
  // 35.140032 ms; the reduce-scatter also folds 7 blocks (131.072 us each): 36.057536 ms.
  EXPECT_NEAR(predicted(Collective::kAllgather, Algorithm::kDirect, size_t{128} << 10, 8),
              35.140032 * kMs, kTolerance);
  EXPECT_NEAR(predicted(Collective::kReduceScatter, Algorithm::kDirect, size_t{128} << 10, 8),
              36.057536 * kMs, kTolerance);
  EXPECT_EQ(cheapest_algorithm(Collective::kAllgather, size_t{128} << 10, 8, kLab),
            Algorithm::kDirect);
  // 32 MiB blocks on 4 ranks: the ring's 3 x 268.435456 + 25.4 = 830.706368 ms beats direct.
  EXPECT_NEAR(predicted(Collective::kAllgather, Algorithm::kRing, size_t{32} << 20, 4),
              830.706368 * kMs, kTolerance);
  EXPECT_EQ(cheapest_algorithm(Collective::kReduceScatter, size_t{32} << 20, 4, kLab),
            Algorithm::kRing);
  // Barrier on 8 ranks: direct 25 + 7 x 0.4 = 27.8 ms, dissemination 3 x 25.4 = 76.2 ms; past 64
  // ranks the direct barrier is ruled out.
  EXPECT_NEAR(predicted(Collective::kBarrier, Algorithm::kDirect, 0, 8), 27.8 * kMs, kTolerance);
  EXPECT_NEAR(predicted(Collective::kBarrier, Algorithm::kDissemination, 0, 8), 76.2 * kMs,
              kTolerance);
  EXPECT_EQ(cheapest_algorithm(Collective::kBarrier, 0, 8, kLab), Algorithm::kDirect);
  EXPECT_EQ(cheapest_algorithm(Collective::kBarrier, 0, 100, kLab), Algorithm::kDissemination);
}

TEST(CostModel, TiersItDoesNotDescribeHaveNoPrediction) {
  EXPECT_FALSE(predict_seconds(Collective::kAllreduce, Algorithm::kHierarchical, 4096, 8, kLab));
  EXPECT_FALSE(predict_seconds(Collective::kAllreduce, Algorithm::kHosts, 4096, 8, kLab));
  EXPECT_FALSE(predict_seconds(Collective::kAllreduce, Algorithm::kSharedMemory, 4096, 8, kLab));
  EXPECT_FALSE(predict_seconds(Collective::kBroadcast, Algorithm::kRing, 4096, 8, kLab));
}

// A flat topology of `size` ranks whose slowest round trip measured `max_rtt_ms`.
Topology measured(int size, double max_rtt_ms) {
  Topology topology = topology_from_groups(std::vector<int>(static_cast<size_t>(size), 0));
  topology.max_rtt_ms = max_rtt_ms;
  return topology;
}

TEST(CostModel, TheTableChoosesByTheModelWhereRoundTripsWereMeasured) {
  const Topology far = measured(4, 50);
  // 4 MiB on 4 ranks: without measured round trips the ring (at least 64 KiB); with them, the
  // model's recursive doubling (above).
  EXPECT_EQ(choose_algorithm(Collective::kAllreduce, {size_t{4} << 20, 4, nullptr}, nullptr),
            Algorithm::kRing);
  EXPECT_EQ(choose_algorithm(Collective::kAllreduce, {size_t{4} << 20, 4, &far}, nullptr),
            Algorithm::kRecursiveDoubling);
  EXPECT_EQ(choose_algorithm(Collective::kAllreduce, {size_t{8} << 20, 4, &far}, nullptr),
            Algorithm::kRing);
  // A 1 MiB broadcast on 8 ranks: the tree by threshold, direct by the model.
  const Topology far8 = measured(8, 50);
  EXPECT_EQ(choose_algorithm(Collective::kBroadcast, {size_t{1} << 20, 8, nullptr}, nullptr),
            Algorithm::kBinomialTree);
  EXPECT_EQ(choose_algorithm(Collective::kBroadcast, {size_t{1} << 20, 8, &far8}, nullptr),
            Algorithm::kDirect);
  // An override still wins over the model.
  const AlgorithmOverrides ring = AlgorithmOverrides::parse("allreduce:ring");
  EXPECT_EQ(choose_algorithm(Collective::kAllreduce, {4096, 8, &far8}, &ring), Algorithm::kRing);
  // A topology without measured round trips (labels, flat) keeps the thresholds.
  const Topology labelled = measured(8, 0);
  EXPECT_EQ(choose_algorithm(Collective::kBroadcast, {size_t{1} << 20, 8, &labelled}, nullptr),
            Algorithm::kBinomialTree);
}

TEST(CostModel, SymmetricDirectExchangesStayWithinTheirBurst) {
  // 1 MiB on 8 ranks: the model alone would take the direct exchange (94.9 ms against doubling's
  // 104.5 ms), but every rank would post 7 MiB at once; it is ruled out above 4 MiB per rank.
  EXPECT_LT(predicted(Collective::kAllreduce, Algorithm::kDirectAllreduce, size_t{1} << 20, 8),
            predicted(Collective::kAllreduce, Algorithm::kRecursiveDoubling, size_t{1} << 20, 8));
  EXPECT_EQ(cheapest_algorithm(Collective::kAllreduce, size_t{1} << 20, 8, kLab),
            Algorithm::kRecursiveDoubling);
  EXPECT_EQ(cheapest_algorithm(Collective::kAllreduce, size_t{512} << 10, 8, kLab),
            Algorithm::kDirectAllreduce);  // 3.5 MiB per rank
  EXPECT_EQ(cheapest_algorithm(Collective::kAllgather, size_t{1} << 20, 8, kLab), Algorithm::kRing);
  // A broadcast's root bursts alone: the 1 MiB direct broadcast above stays a candidate.
  // On 2 ranks 300 ms apart the direct allreduce (tied with doubling, earlier in the table) wins
  // up to 4 MiB, then doubling takes over.
  const LinkModel far = link_model(300);
  EXPECT_EQ(cheapest_algorithm(Collective::kAllreduce, size_t{4} << 20, 2, far),
            Algorithm::kDirectAllreduce);
  EXPECT_EQ(cheapest_algorithm(Collective::kAllreduce, (size_t{4} << 20) + 4, 2, far),
            Algorithm::kRecursiveDoubling);
}

}  // namespace
}  // namespace torchwan::engine
