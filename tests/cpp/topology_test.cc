// Region derivation: canonical numbering, labels, RTT clustering and the label/RTT choice.
#include "csrc/topology.h"

#include <gtest/gtest.h>

#include <cmath>
#include <limits>
#include <stdexcept>
#include <string>
#include <vector>

#include "csrc/algorithm_tuning.h"

namespace torchwan::engine {
namespace {

using Regions = std::vector<std::vector<int>>;

// A symmetric RTT matrix: `inside` within a group, `between` across groups.
std::vector<double> two_level_rtt(const std::vector<int>& group_of, double inside, double between) {
  const size_t n = group_of.size();
  std::vector<double> rtt(n * n, 0.0);
  for (size_t i = 0; i < n; ++i) {
    for (size_t j = 0; j < n; ++j) {
      if (i != j) rtt[i * n + j] = group_of[i] == group_of[j] ? inside : between;
    }
  }
  return rtt;
}

TEST(Topology, GroupsAreRenumberedByLowestRank) {
  const std::vector<int> groups = {7, 3, 7, 3, 9};
  const Topology topology = topology_from_groups(groups);
  EXPECT_EQ(topology.regions, (Regions{{0, 2}, {1, 3}, {4}}));
  EXPECT_EQ(topology.region_of, (std::vector<int>{0, 1, 0, 1, 2}));
  EXPECT_TRUE(topology.consistent());
  EXPECT_FALSE(topology.uniform());
  EXPECT_EQ(topology.size(), 5);
  EXPECT_EQ(topology.region_count(), 3);
  // The same grouping under other ids gives the identical Topology.
  const Topology renamed = topology_from_groups(std::vector<int>{1, 0, 1, 0, 5});
  EXPECT_EQ(renamed.regions, topology.regions);
  EXPECT_EQ(renamed.region_of, topology.region_of);
}

TEST(Topology, ConsistencyRejectsHandMadeMistakes) {
  Topology topology = topology_from_groups(std::vector<int>{0, 0, 1, 1});
  EXPECT_TRUE(topology.uniform());
  topology.region_of[3] = 0;
  EXPECT_FALSE(topology.consistent());
  Topology unordered{{{2, 3}, {0, 1}}, {1, 1, 0, 0}};
  EXPECT_FALSE(unordered.consistent());
  Topology missing{{{0}, {1}}, {0, 1, 1}};
  EXPECT_FALSE(missing.consistent());
}

TEST(Topology, LabelsGroupRanks) {
  const std::vector<std::string> labels = {"us-east", "eu-west", "us-east", "ap-south", "eu-west"};
  const Topology topology = topology_from_labels(labels);
  EXPECT_EQ(topology.regions, (Regions{{0, 2}, {1, 4}, {3}}));
  EXPECT_THROW(topology_from_labels(std::vector<std::string>{}), std::invalid_argument);
  EXPECT_THROW(topology_from_labels(std::vector<std::string>{"a", ""}), std::invalid_argument);
}

TEST(Topology, RttClusteringFindsSites) {
  const std::vector<int> sites = {0, 1, 0, 2, 1, 2};
  const Topology topology = topology_from_rtt(two_level_rtt(sites, 0.3, 80.0), 6);
  EXPECT_EQ(topology.regions, (Regions{{0, 2}, {1, 4}, {3, 5}}));
}

TEST(Topology, RttClusteringUsesTheRatioAboveTheFloor) {
  // 20 ms apart inside, 200 ms between: far above the floor, the ratio separates them.
  EXPECT_EQ(topology_from_rtt(two_level_rtt({0, 0, 1, 1}, 20, 200), 4).regions,
            (Regions{{0, 1}, {2, 3}}));
  // 20 ms against 60 ms is within 5x: one region.
  EXPECT_EQ(topology_from_rtt(two_level_rtt({0, 0, 1, 1}, 20, 60), 4).regions,
            (Regions{{0, 1, 2, 3}}));
  // Uneven sub-millisecond links stay together under the floor.
  std::vector<double> lan = two_level_rtt({0, 0, 1, 1}, 0.05, 1.5);
  EXPECT_EQ(topology_from_rtt(lan, 4).regions, (Regions{{0, 1, 2, 3}}));
  EXPECT_EQ(topology_from_rtt(lan, 4, {.ratio = 5, .floor_ms = 0}).regions,
            (Regions{{0, 1}, {2, 3}}));
}

TEST(Topology, RttClusteringIsSingleLinkageOverTheFasterDirection) {
  // 0-1 and 1-2 are close, 0-2 is not: single linkage still puts all three together. Rank 3 is
  // far from everyone; its asymmetric measurements resolve the same way on every rank.
  const double far = 100;
  std::vector<double> rtt = {0,   1,   far, far,  //
                             1,   0,   1,   far,  //
                             far, 1,   0,   far,  //
                             150, far, far, 0};
  rtt[0 * 4 + 3] = 50;  // the faster direction still says far
  EXPECT_EQ(topology_from_rtt(rtt, 4).regions, (Regions{{0, 1, 2}, {3}}));
}

TEST(Topology, OneDirectionDelayedByAPeerBusyElsewhereStaysInItsRegion) {
  // Measured in the regions lab: rank 2 answered rank 3's pings a far round trip late (it was
  // waiting on its own far peers), while rank 2's pings to rank 3 came back in 1 ms.
  std::vector<double> rtt = {0,    1.0,  80.5, 80.5,  //
                             1.0,  0,    80.5, 80.5,  //
                             80.4, 80.4, 0,    1.03,  //
                             80.1, 80.0, 80.5, 0};
  EXPECT_EQ(topology_from_rtt(rtt, 4).regions, (Regions{{0, 1}, {2, 3}}));
}

TEST(Topology, RttClusteringRecordsTheSlowestRoundTripOfItsPairs) {
  std::vector<double> rtt = {0,    1.0,  80.5, 80.5,  //
                             1.0,  0,    80.5, 80.5,  //
                             80.4, 80.4, 0,    1.03,  //
                             80.1, 80.0, 80.5, 0};
  // Each pair counts with its faster direction: 0-2 and 1-2 at 80.4 ms are the slowest.
  EXPECT_DOUBLE_EQ(topology_from_rtt(rtt, 4).max_rtt_ms, 80.4);
  const std::vector<std::string> labels = {"a", "a", "b", "b"};
  EXPECT_EQ(topology_from_labels(labels).max_rtt_ms, 0);  // nothing measured
}

TEST(AlgorithmTuning, LatencyBoundSizeFollowsTheMeasuredRoundTrip) {
  EXPECT_EQ(latency_bound_max_bytes(0), kSmallAllreduceMaxBytes);  // not measured
  EXPECT_EQ(latency_bound_max_bytes(std::nan("")), kSmallAllreduceMaxBytes);
  EXPECT_EQ(latency_bound_max_bytes(0.05), kSmallAllreduceMaxBytes);  // a LAN
  EXPECT_EQ(latency_bound_max_bytes(1), size_t{256} << 10);
  EXPECT_EQ(latency_bound_max_bytes(8), size_t{2} << 20);
  EXPECT_EQ(latency_bound_max_bytes(50), size_t{4} << 20);  // the ceiling
}

TEST(Topology, RttClusteringHandlesUnmeasuredAndInvalidEntries) {
  const double inf = std::numeric_limits<double>::infinity();
  std::vector<double> rtt = two_level_rtt({0, 0, 1}, 1, inf);
  EXPECT_EQ(topology_from_rtt(rtt, 3).regions, (Regions{{0, 1}, {2}}));
  EXPECT_EQ(topology_from_rtt(std::vector<double>(4, inf), 2).regions, (Regions{{0}, {1}}));
  rtt[1] = std::numeric_limits<double>::quiet_NaN();
  EXPECT_THROW(topology_from_rtt(rtt, 3), std::invalid_argument);
  rtt[1] = -1;
  EXPECT_THROW(topology_from_rtt(rtt, 3), std::invalid_argument);
  EXPECT_THROW(topology_from_rtt(std::vector<double>(8, 1.0), 3), std::invalid_argument);
  // The diagonal is never read as a link.
  std::vector<double> diagonal = two_level_rtt({0, 0, 1}, 1, 100);
  diagonal[0] = std::numeric_limits<double>::quiet_NaN();
  diagonal[8] = -1;
  EXPECT_EQ(topology_from_rtt(diagonal, 3).regions, (Regions{{0, 1}, {2}}));
  // Scale is relative: with only one kind of link there is nothing to separate.
  EXPECT_EQ(topology_from_rtt(two_level_rtt({0, 1}, 1, 100), 2).regions, (Regions{{0, 1}}));
}

TEST(Topology, ChooseUsesLabelsOrRttButNeverAMix) {
  const std::vector<double> rtt = two_level_rtt({0, 1, 1}, 1, 100);
  EXPECT_EQ(choose_topology(std::vector<std::string>{"a", "a", "b"}, rtt).regions,
            (Regions{{0, 1}, {2}}));
  EXPECT_EQ(choose_topology(std::vector<std::string>{"", "", ""}, rtt).regions,
            (Regions{{0}, {1, 2}}));
  EXPECT_EQ(choose_topology(std::vector<std::string>{""}, {}).regions, (Regions{{0}}));
  try {
    choose_topology(std::vector<std::string>{"a", "", "b"}, rtt);
    FAIL() << "a partial labelling must be rejected";
  } catch (const std::invalid_argument& error) {
    EXPECT_NE(std::string(error.what()).find("ranks 0,2 set a region label but ranks 1"),
              std::string::npos)
        << error.what();
  }
}

}  // namespace
}  // namespace torchwan::engine
