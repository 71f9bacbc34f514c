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

struct HandWorked {
  Collective collective;
  Algorithm algorithm;
  size_t bytes;
  int size;
  double ms;
};

constexpr size_t kKiB = 1024;
constexpr size_t kMiB = 1024 * kKiB;

// On the wire: 4 KiB 32.768 us, 128 KiB 1.048576 ms, 1 MiB 8.388608 ms; folding takes an eighth
// of that. Each line: the formula's terms in ms.
constexpr HandWorked kHandWorked[] = {
    // 25 + 7 x (0.032768 + 0.4 + 0.004096)
    {Collective::kAllreduce, Algorithm::kDirectAllreduce, 4 * kKiB, 8, 28.058048},
    // 3 rounds of 25 + 0.032768 + 0.4 + 0.004096
    {Collective::kAllreduce, Algorithm::kRecursiveDoubling, 4 * kKiB, 8, 76.310592},
    // 14 steps of one 512-byte chunk (0.004096), each waiting for the trip: 14 x 25.404096
    {Collective::kAllreduce, Algorithm::kRing, 4 * kKiB, 8, 355.657344},
    // 64 MiB segments (536.870912) in 4 MiB chunks; the uplink never idles: 6 x 536.870912 + 25.4
    {Collective::kAllreduce, Algorithm::kRing, 256 * kMiB, 4, 3246.625472},
    // 2 rounds of 25 + 2147.483648 + 0.4 + 268.435456
    {Collective::kAllreduce, Algorithm::kRecursiveDoubling, 256 * kMiB, 4, 4882.638208},
    // 25 + 3 x (8.388608 + 0.4 + 1.048576)
    {Collective::kAllreduce, Algorithm::kDirectAllreduce, 1 * kMiB, 4, 54.511552},
    // 2 x (25 + 8.388608 + 0.4 + 1.048576)
    {Collective::kAllreduce, Algorithm::kRecursiveDoubling, 1 * kMiB, 4, 69.674368},
    // 256 KiB segments: 2 x 25 + 6 x (2.097152 + 0.4) + 3 x 0.262144
    {Collective::kAllreduce, Algorithm::kTwoStep, 1 * kMiB, 4, 65.769344},
    // 128 KiB segments: 2 x 25 + 14 x (1.048576 + 0.4) + 7 x 0.131072
    {Collective::kAllreduce, Algorithm::kTwoStep, 1 * kMiB, 8, 71.197568},
    // 1 MiB segments: 2 x 25 + 6 x (8.388608 + 0.4) + 3 x 1.048576
    {Collective::kAllreduce, Algorithm::kTwoStep, 4 * kMiB, 4, 105.877376},
    // 1 MiB segments in 256 KiB chunks wait for the trip: 5 x (25 + 2.097152 + 0.4) + 8.388608 +
    // 25.4
    {Collective::kAllreduce, Algorithm::kRing, 4 * kMiB, 4, 171.274368},
    // 2 MiB segments in 512 KiB chunks: 5 x (25 + 4.194304 + 0.4) + 16.777216 + 25.4
    {Collective::kAllreduce, Algorithm::kRing, 8 * kMiB, 4, 190.148736},
    // 25 + 7 x (8.388608 + 0.4)
    {Collective::kBroadcast, Algorithm::kDirect, 1 * kMiB, 8, 86.520256},
    // 3 x (25 + 8.388608 + 0.4)
    {Collective::kBroadcast, Algorithm::kBinomialTree, 1 * kMiB, 8, 101.365824},
    // 256 KiB chunks: 8.388608 + 7 x 25.4 + 6 x 2.097152
    {Collective::kBroadcast, Algorithm::kChain, 1 * kMiB, 8, 198.77152},
    // 2 MiB chunks: 536.870912 + 7 x 25.4 + 6 x 16.777216
    {Collective::kBroadcast, Algorithm::kChain, 64 * kMiB, 8, 815.334208},
    // 128 KiB blocks: 25 + 7 x (1.048576 + 0.4)
    {Collective::kAllgather, Algorithm::kDirect, 128 * kKiB, 8, 35.140032},
    // ... and the reduce-scatter folds them: + 7 x 0.131072
    {Collective::kReduceScatter, Algorithm::kDirect, 128 * kKiB, 8, 36.057536},
    // 32 MiB blocks (268.435456) in 4 MiB chunks: 3 x 268.435456 + 25.4
    {Collective::kAllgather, Algorithm::kRing, 32 * kMiB, 4, 830.706368},
    // 25 + 7 x 0.4
    {Collective::kBarrier, Algorithm::kDirect, 0, 8, 27.8},
    // 3 x (25 + 0.4)
    {Collective::kBarrier, Algorithm::kDissemination, 0, 8, 76.2},
};

TEST(CostModel, PredictionsMatchTheHandWorkedFigures) {
  for (const HandWorked& c : kHandWorked) {
    EXPECT_NEAR(predicted(c.collective, c.algorithm, c.bytes, c.size), c.ms * kMs, kTolerance)
        << collective_name(c.collective) << ":" << algorithm_name(c.collective, c.algorithm) << " "
        << c.bytes << " bytes on " << c.size << " ranks";
  }
}

TEST(CostModel, TheCheapestFollowsFromThePredictions) {
  // Eight ranks, small: one latency beats doubling's three and the ring's fourteen.
  EXPECT_EQ(cheapest_algorithm(Collective::kAllreduce, 4 * kKiB, 8, kLab),
            Algorithm::kDirectAllreduce);
  // Four ranks cross from direct (1 MiB: 54.511552 ms against two steps' 65.769344) to two steps
  // (4 MiB: 105.877376 ms against doubling's 126.297472, direct's 139.446208 and the ring's
  // 171.274368) to the ring (8 MiB: 190.148736 against doubling's 201.794944; two steps would
  // burst 6 MiB per rank), and the ring keeps the link busy at 256 MiB.
  EXPECT_EQ(cheapest_algorithm(Collective::kAllreduce, 1 * kMiB, 4, kLab),
            Algorithm::kDirectAllreduce);
  EXPECT_EQ(cheapest_algorithm(Collective::kAllreduce, 4 * kMiB, 4, kLab), Algorithm::kTwoStep);
  EXPECT_EQ(cheapest_algorithm(Collective::kAllreduce, 8 * kMiB, 4, kLab), Algorithm::kRing);
  EXPECT_EQ(cheapest_algorithm(Collective::kAllreduce, 256 * kMiB, 4, kLab), Algorithm::kRing);
  EXPECT_EQ(cheapest_algorithm(Collective::kBroadcast, 1 * kMiB, 8, kLab), Algorithm::kDirect);
  EXPECT_EQ(cheapest_algorithm(Collective::kBroadcast, 64 * kMiB, 8, kLab), Algorithm::kChain);
  EXPECT_EQ(cheapest_algorithm(Collective::kAllgather, 128 * kKiB, 8, kLab), Algorithm::kDirect);
  EXPECT_EQ(cheapest_algorithm(Collective::kReduceScatter, 32 * kMiB, 4, kLab), Algorithm::kRing);
  EXPECT_EQ(cheapest_algorithm(Collective::kBarrier, 0, 8, kLab), Algorithm::kDirect);
  // Past 64 ranks the direct barrier is ruled out.
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
  // model's two steps (above).
  EXPECT_EQ(choose_algorithm(Collective::kAllreduce, {4 * kMiB, 4, nullptr}, nullptr),
            Algorithm::kRing);
  EXPECT_EQ(choose_algorithm(Collective::kAllreduce, {4 * kMiB, 4, &far}, nullptr),
            Algorithm::kTwoStep);
  EXPECT_EQ(choose_algorithm(Collective::kAllreduce, {8 * kMiB, 4, &far}, nullptr),
            Algorithm::kRing);
  // A 1 MiB broadcast on 8 ranks: the tree by threshold, direct by the model.
  const Topology far8 = measured(8, 50);
  EXPECT_EQ(choose_algorithm(Collective::kBroadcast, {kMiB, 8, nullptr}, nullptr),
            Algorithm::kBinomialTree);
  EXPECT_EQ(choose_algorithm(Collective::kBroadcast, {kMiB, 8, &far8}, nullptr),
            Algorithm::kDirect);
  // An override still wins over the model.
  const AlgorithmOverrides ring = AlgorithmOverrides::parse("allreduce:ring");
  EXPECT_EQ(choose_algorithm(Collective::kAllreduce, {4096, 8, &far8}, &ring), Algorithm::kRing);
  // A topology without measured round trips (labels, flat) keeps the thresholds.
  const Topology labelled = measured(8, 0);
  EXPECT_EQ(choose_algorithm(Collective::kBroadcast, {kMiB, 8, &labelled}, nullptr),
            Algorithm::kBinomialTree);
}

TEST(CostModel, TheFlatAllreduceRuleServesGroupsAndTheStepsBetweenTiers) {
  // Measured round trips: the model's choice, as for a whole group.
  EXPECT_EQ(flat_allreduce_algorithm(4 * kMiB, 4, 50), Algorithm::kTwoStep);
  EXPECT_EQ(flat_allreduce_algorithm(4 * kKiB, 8, 50), Algorithm::kDirectAllreduce);
  EXPECT_EQ(flat_allreduce_algorithm(256 * kMiB, 4, 50), Algorithm::kRing);
  // None measured: the size thresholds (64 KiB).
  EXPECT_EQ(flat_allreduce_algorithm(4 * kKiB, 8, 0), Algorithm::kDirectAllreduce);
  EXPECT_EQ(flat_allreduce_algorithm(32 * kKiB, 4, 0), Algorithm::kRecursiveDoubling);
  EXPECT_EQ(flat_allreduce_algorithm(4 * kMiB, 4, 0), Algorithm::kRing);
  const Topology far = measured(4, 50);
  EXPECT_EQ(choose_algorithm(Collective::kAllreduce, {4 * kMiB, 4, &far}, nullptr),
            flat_allreduce_algorithm(4 * kMiB, 4, 50));
}

TEST(CostModel, SymmetricDirectExchangesStayWithinTheirBurst) {
  // 1 MiB on 8 ranks: the model alone would take the direct exchange (94.9 ms against doubling's
  // 104.5 ms), but every rank would post 7 MiB at once; it is ruled out above 4 MiB per rank.
  // Two steps post 7 x 128 KiB at a time and beat both (71.2 ms).
  EXPECT_LT(predicted(Collective::kAllreduce, Algorithm::kDirectAllreduce, kMiB, 8),
            predicted(Collective::kAllreduce, Algorithm::kRecursiveDoubling, kMiB, 8));
  EXPECT_EQ(cheapest_algorithm(Collective::kAllreduce, kMiB, 8, kLab), Algorithm::kTwoStep);
  EXPECT_EQ(cheapest_algorithm(Collective::kAllreduce, 512 * kKiB, 8, kLab),
            Algorithm::kDirectAllreduce);  // 3.5 MiB per rank
  // Two steps of 8 ranks burst (P-1)/P of the buffer: within 4 MiB up to 4.57 MiB, then doubling
  // (three latencies of the whole buffer against the ring's fourteen).
  EXPECT_EQ(cheapest_algorithm(Collective::kAllreduce, 4 * kMiB, 8, kLab), Algorithm::kTwoStep);
  EXPECT_EQ(cheapest_algorithm(Collective::kAllreduce, 5 * kMiB, 8, kLab),
            Algorithm::kRecursiveDoubling);
  EXPECT_EQ(cheapest_algorithm(Collective::kAllgather, kMiB, 8, kLab), Algorithm::kRing);
  // A broadcast's root bursts alone: the 1 MiB direct broadcast above stays a candidate.
  // On 2 ranks 300 ms apart the direct allreduce (tied with doubling, earlier in the table) wins
  // up to 4 MiB, then doubling takes over.
  const LinkModel far = link_model(300);
  EXPECT_EQ(cheapest_algorithm(Collective::kAllreduce, 4 * kMiB, 2, far),
            Algorithm::kDirectAllreduce);
  EXPECT_EQ(cheapest_algorithm(Collective::kAllreduce, 4 * kMiB + 4, 2, far),
            Algorithm::kRecursiveDoubling);
}

}  // namespace
}  // namespace torchwan::engine
