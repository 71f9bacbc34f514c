// The host tier's step between hosts on its own (csrc/host_tier_step.h), as the c10d backend's
// NCCL tier runs it: hosts whose ranks reduce-scatter and allgather by themselves (here by hand,
// standing in for NCCL) meet hosts that run the whole host tier in shared memory, and every rank
// ends with the exact sum. Also: which calls take the host tier, and a group without one.
#include "csrc/host_tier_step.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <chrono>
#include <cstring>
#include <memory>
#include <stdexcept>
#include <vector>

#include "csrc/algorithm_table.h"
#include "csrc/collectives.h"
#include "csrc/host_shared_memory.h"
#include "csrc/topology.h"
#include "memory_transport.h"
#include "test_support.h"

namespace torchwan::engine {
namespace {

using namespace std::chrono_literals;

Topology topology_on_hosts(const std::vector<int>& host_of) {
  Topology topology = topology_from_groups(std::vector<int>(host_of.size(), 0));
  topology.host_of = host_of;
  return topology;
}

// Small integers as floats: every summation order gives the same exact sum.
std::vector<float> input_of(int rank, size_t count) {
  std::vector<float> values(count);
  for (size_t i = 0; i < count; ++i) values[i] = static_cast<float>((rank * 7 + i * 3) % 17) - 8;
  return values;
}

// Ranks on hosts in `self_reducing` do the steps inside their host by hand and only the step
// between hosts through the engine; the others run engine::allreduce (the host tier in shared
// memory). Every rank must end with the sum over all ranks.
void expect_mixed_tiers_exact(const std::vector<int>& host_of,
                              const std::vector<int>& self_reducing, size_t count) {
  const int size = static_cast<int>(host_of.size());
  const Topology topology = topology_on_hosts(host_of);
  auto ranks = testing::connect_memory_ranks(size);
  std::vector<std::vector<float>> inputs;
  std::vector<float> expected(count, 0.0F);
  for (int rank = 0; rank < size; ++rank) {
    inputs.push_back(input_of(rank, count));
    for (size_t i = 0; i < count; ++i) expected[i] += inputs.back()[i];
  }
  std::vector<std::vector<float>> outputs(inputs);
  const auto deadline = std::chrono::steady_clock::now() + 60s;
  testing::run_on_threads(size, [&](int rank) {
    HostSharedMemory memory;
    const CollectiveContext ctx{.transport = *ranks[static_cast<size_t>(rank)],
                                .seq = 1,
                                .deadline = deadline,
                                .topology = &topology,
                                .host_memory = &memory};
    const int host = host_of[static_cast<size_t>(rank)];
    std::vector<float>& data = outputs[static_cast<size_t>(rank)];
    if (std::find(self_reducing.begin(), self_reducing.end(), host) == self_reducing.end()) {
      allreduce(ctx, data.data(), count, DataType::kFloat32, ReduceOp::kSum);
      return;
    }
    // The reduce-scatter inside the host, by hand: this rank's shard summed over its host.
    const HostPlace place = host_place(topology, rank);
    const RingLayout layout = host_tier_layout(count, DataType::kFloat32, place.local_size);
    const size_t first = layout.offset[static_cast<size_t>(place.position)] / sizeof(float);
    const size_t length = layout.length[static_cast<size_t>(place.position)] / sizeof(float);
    std::vector<float> shard(length, 0.0F);
    for (int peer = 0; peer < size; ++peer) {
      if (host_of[static_cast<size_t>(peer)] != host) continue;
      for (size_t i = 0; i < length; ++i) shard[i] += inputs[static_cast<size_t>(peer)][first + i];
    }
    allreduce_between_hosts(ctx, shard.data(), count, DataType::kFloat32, ReduceOp::kSum);
    // The allgather inside the host, by hand: only this rank's shard is checked here; the
    // others are its host peers' (each checks its own).
    std::fill(data.begin(), data.end(), 0.0F);
    std::memcpy(data.data() + first, shard.data(), length * sizeof(float));
    for (size_t i = 0; i < count; ++i) {
      if (i < first || i >= first + length) data[i] = expected[i];
    }
  });
  for (int rank = 0; rank < size; ++rank) {
    EXPECT_EQ(outputs[static_cast<size_t>(rank)], expected) << "rank " << rank;
  }
}

// Above kStripedAllreduceMinBytes, with a count the local ranks cannot share evenly.
constexpr size_t kCount = (size_t{1} << 20) + 3;

TEST(HostTierStep, HostsReducingByThemselvesMeetSharedMemoryHostsExactly) {
  expect_mixed_tiers_exact({0, 0, 1, 1}, {1}, kCount);
  expect_mixed_tiers_exact({0, 1, 0, 1}, {0}, kCount);
  expect_mixed_tiers_exact({0, 0, 0, 1, 1, 1, 2, 2, 2}, {0, 2}, kCount);
}

TEST(HostTierStep, EveryHostReducingByItselfIsExact) {
  expect_mixed_tiers_exact({0, 0, 1, 1}, {0, 1}, kCount);
}

TEST(HostTierStep, TakesTheHostTierExactlyWhenTheEngineWould) {
  const Topology two_by_two = topology_on_hosts({0, 0, 1, 1});
  EXPECT_TRUE(allreduce_takes_host_tier(two_by_two, nullptr, kCount * 4));
  EXPECT_FALSE(allreduce_takes_host_tier(two_by_two, nullptr, 1000));
  const AlgorithmOverrides ring = AlgorithmOverrides::parse("allreduce:ring");
  EXPECT_FALSE(allreduce_takes_host_tier(two_by_two, &ring, kCount * 4));
  EXPECT_FALSE(allreduce_takes_host_tier(topology_on_hosts({0, 1, 2, 3}), nullptr, kCount * 4));
  EXPECT_FALSE(allreduce_takes_host_tier(topology_on_hosts({0, 0, 1}), nullptr, kCount * 4));
}

TEST(HostTierStep, PlacesEachRankInItsHost) {
  const Topology interleaved = topology_on_hosts({0, 1, 0, 1, 0, 1});
  const HostPlace place = host_place(interleaved, 4);
  EXPECT_EQ(place.host, 0);
  EXPECT_EQ(place.position, 2);
  EXPECT_EQ(place.local_size, 3);
  EXPECT_EQ(host_place(interleaved, 3).host, 1);
  EXPECT_EQ(host_place(interleaved, 3).position, 1);
}

TEST(HostTierStep, AGroupWithoutHostTierIsRefusedBeforeAnyTraffic) {
  auto ranks = testing::connect_memory_ranks(2);
  const Topology separate = topology_on_hosts({0, 1});
  const CollectiveContext ctx{.transport = *ranks[0],
                              .seq = 1,
                              .deadline = std::chrono::steady_clock::now() + 10s,
                              .topology = &separate};
  float value = 1.0F;
  EXPECT_THROW(allreduce_between_hosts(ctx, &value, 1, DataType::kFloat32, ReduceOp::kSum),
               std::invalid_argument);
}

}  // namespace
}  // namespace torchwan::engine
