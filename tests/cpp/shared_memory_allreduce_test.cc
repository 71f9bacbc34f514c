// The shared-memory allreduce among ranks of one host: every dtype and op against the reference
// of reduction_cases.h (forced, at sizes that leave some ranks an empty part), multi-chunk buffers
// through the automatic choice, bit-identical results for order-sensitive floats, and, over a real
// transport, that the data really stays off the sockets (the counting decorator's bytes), while a
// group of two hosts keeps using them.
#include <gtest/gtest.h>

#include <chrono>
#include <cstring>
#include <functional>
#include <memory>
#include <random>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

#include "csrc/algorithm_table.h"
#include "csrc/collectives.h"
#include "csrc/hierarchical.h"
#include "csrc/host_shared_memory.h"
#include "csrc/topology.h"
#include "memory_transport.h"
#include "reduction_cases.h"
#include "test_support.h"

namespace torchwan::engine {
namespace {

using Clock = std::chrono::steady_clock;
using namespace std::chrono_literals;
using namespace test_data;

Topology topology_on_hosts(const std::vector<int>& host_of) {
  Topology topology = topology_from_groups(std::vector<int>(host_of.size(), 0));
  topology.host_of = host_of;
  return topology;
}

// A group whose ranks (threads) each keep their HostSharedMemory between calls, as a process
// group does.
class OneHostGroup {
 public:
  OneHostGroup(std::vector<std::unique_ptr<transport::Transport>> ranks, std::vector<int> host_of)
      : OneHostGroup(std::move(ranks), topology_on_hosts(host_of)) {}
  OneHostGroup(std::vector<std::unique_ptr<transport::Transport>> ranks, Topology topology)
      : ranks_(std::move(ranks)), topology_(std::move(topology)) {
    for (size_t rank = 0; rank < ranks_.size(); ++rank) {
      memory_.push_back(std::make_unique<HostSharedMemory>());
    }
  }

  int size() const { return static_cast<int>(ranks_.size()); }
  transport::Transport& transport(int rank) { return *ranks_[static_cast<size_t>(rank)]; }

  void on_every_rank(const std::function<void(int, const CollectiveContext&)>& body,
                     const AlgorithmOverrides* algorithms = nullptr) {
    const uint32_t seq = next_seq_++;
    const auto deadline = Clock::now() + 60s;
    testing::run_on_threads(size(), [&](int rank) {
      const CollectiveContext ctx{.transport = transport(rank),
                                  .seq = seq,
                                  .deadline = deadline,
                                  .topology = &topology_,
                                  .algorithms = algorithms,
                                  .host_memory = memory_[static_cast<size_t>(rank)].get()};
      body(rank, ctx);
    });
  }

 private:
  std::vector<std::unique_ptr<transport::Transport>> ranks_;
  Topology topology_;
  std::vector<std::unique_ptr<HostSharedMemory>> memory_;
  uint32_t next_seq_ = 1;
};

void expect_bit_identical(const std::vector<std::vector<uint8_t>>& outputs) {
  for (size_t rank = 1; rank < outputs.size(); ++rank) {
    ASSERT_EQ(0, std::memcmp(outputs[rank].data(), outputs[0].data(), outputs[0].size()))
        << "rank " << rank << " differs from rank 0";
  }
}

void expect_reference(OneHostGroup& group, DataType dtype, ReduceOp op, size_t count,
                      const AlgorithmOverrides* algorithms) {
  const ReductionCase c = make_reduction_case(dtype, op, count, group.size(), count + 11);
  std::vector<std::vector<uint8_t>> outputs = c.inputs;
  group.on_every_rank(
      [&](int rank, const CollectiveContext& ctx) {
        allreduce(ctx, outputs[static_cast<size_t>(rank)].data(), count, dtype, op);
      },
      algorithms);
  for (size_t rank = 0; rank < outputs.size(); ++rank) {
    ASSERT_TRUE(equal_values(dtype, outputs[rank], c.expected))
        << dtype_name(dtype) << " " << reduce_op_name(op) << " count " << count << " rank " << rank;
  }
  expect_bit_identical(outputs);
}

class SharedMemoryAllreduce : public ::testing::TestWithParam<int> {};

TEST_P(SharedMemoryAllreduce, EveryTypeAndOpMatchesReference) {
  OneHostGroup group(testing::connect_memory_ranks(GetParam()), std::vector<int>(GetParam(), 0));
  const AlgorithmOverrides forced = AlgorithmOverrides::parse("allreduce:shared_memory");
  for (DataType dtype : kAllTypes) {
    for (ReduceOp op : kAllOps) {
      if (!reduce_supported(dtype, op)) continue;
      // Fewer elements than ranks (empty parts), and a count no rank count divides.
      for (size_t count : {size_t{1}, size_t{3}, size_t{1001}}) {
        expect_reference(group, dtype, op, count, &forced);
      }
    }
  }
}

TEST_P(SharedMemoryAllreduce, ChunksOfLargeBuffersAreChosenAutomatically) {
  OneHostGroup group(testing::connect_memory_ranks(GetParam()), std::vector<int>(GetParam(), 0));
  const size_t slot_floats = HostSharedMemory::kSlotBytes / sizeof(float);
  // Just above the automatic threshold, one slot and a bit, and five slots (slots reused).
  for (size_t count : {size_t{16385}, slot_floats + 7, 5 * slot_floats + 3}) {
    expect_reference(group, DataType::kFloat32, ReduceOp::kSum, count, nullptr);
    expect_reference(group, DataType::kInt64, ReduceOp::kMax, count / 2, nullptr);
  }
}

TEST_P(SharedMemoryAllreduce, OrderSensitiveFloatsAreBitIdenticalOnEveryRank) {
  OneHostGroup group(testing::connect_memory_ranks(GetParam()), std::vector<int>(GetParam(), 0));
  const size_t count = (size_t{3} << 20) + 5;
  std::vector<std::vector<float>> data(static_cast<size_t>(group.size()),
                                       std::vector<float>(count));
  std::mt19937 random(7);
  std::uniform_real_distribution<float> value(-1e3f, 1e3f);
  for (auto& floats : data) {
    for (float& f : floats) f = value(random);
  }
  group.on_every_rank([&](int rank, const CollectiveContext& ctx) {
    allreduce(ctx, data[static_cast<size_t>(rank)].data(), count, DataType::kFloat32,
              ReduceOp::kSum);
  });
  for (size_t rank = 1; rank < data.size(); ++rank) {
    ASSERT_EQ(0, std::memcmp(data[rank].data(), data[0].data(), count * sizeof(float)))
        << "rank " << rank << " differs from rank 0";
  }
}

INSTANTIATE_TEST_SUITE_P(Ranks, SharedMemoryAllreduce, ::testing::Values(2, 3, 4));

// Hosts of equal size: shared memory inside each, a shard per local rank between them. Hosts whose
// ranks interleave, three hosts, and counts below the threshold (forced) and over several slots.
TEST(HostTier, MatchesReferenceOnEveryLayout) {
  const AlgorithmOverrides forced = AlgorithmOverrides::parse("allreduce:hosts");
  for (const std::vector<int>& hosts :
       {std::vector<int>{0, 0, 1, 1}, std::vector<int>{0, 1, 0, 1},
        std::vector<int>{0, 1, 2, 0, 1, 2}, std::vector<int>{0, 0, 0, 1, 1, 1}}) {
    OneHostGroup group(testing::connect_memory_ranks(static_cast<int>(hosts.size())), hosts);
    for (size_t count : {size_t{1}, size_t{999}}) {
      expect_reference(group, DataType::kFloat32, ReduceOp::kSum, count, &forced);
      expect_reference(group, DataType::kInt32, ReduceOp::kBxor, count, &forced);
    }
    expect_reference(group, DataType::kFloat32, ReduceOp::kSum, (size_t{5} << 20) + 3, nullptr);
    expect_reference(group, DataType::kBFloat16, ReduceOp::kMax, (size_t{3} << 20) + 1, nullptr);
  }
}

TEST(HostTier, IsChosenOnlyForHostsOfEqualSizeAboveOne) {
  const auto chosen = [](const std::vector<int>& hosts) {
    const Topology topology = topology_on_hosts(hosts);
    return choose_algorithm(
        Collective::kAllreduce,
        {.bytes = 1 << 20, .size = static_cast<int>(hosts.size()), .topology = &topology}, nullptr);
  };
  EXPECT_EQ(chosen({0, 0, 1, 1}), Algorithm::kHosts);
  EXPECT_NE(chosen({0, 0, 1}), Algorithm::kHosts);     // unequal hosts
  EXPECT_NE(chosen({0, 1, 2, 3}), Algorithm::kHosts);  // one rank per host
  // Regions that are the hosts give way to the host tier, and so do regions of equally many
  // hosts (the tier goes through them); regions of unequal numbers of hosts do not.
  Topology regions_are_hosts = topology_from_groups(std::vector<int>{0, 1, 0, 1});
  regions_are_hosts.host_of = {0, 1, 0, 1};
  EXPECT_EQ(
      choose_algorithm(Collective::kAllreduce,
                       {.bytes = 1 << 20, .size = 4, .topology = &regions_are_hosts}, nullptr),
      Algorithm::kHosts);
  Topology regions_of_hosts = topology_from_groups(std::vector<int>{0, 0, 0, 0, 1, 1, 1, 1});
  regions_of_hosts.host_of = {0, 0, 1, 1, 2, 2, 3, 3};
  EXPECT_EQ(choose_algorithm(Collective::kAllreduce,
                             {.bytes = 1 << 20, .size = 8, .topology = &regions_of_hosts}, nullptr),
            Algorithm::kHosts);
  Topology uneven_regions = topology_from_groups(std::vector<int>{0, 0, 0, 0, 1, 1});
  uneven_regions.host_of = {0, 0, 1, 1, 2, 2};
  EXPECT_EQ(choose_algorithm(Collective::kAllreduce,
                             {.bytes = 1 << 20, .size = 6, .topology = &uneven_regions}, nullptr),
            Algorithm::kHierarchical);
  const AlgorithmOverrides forced = AlgorithmOverrides::parse("allreduce:hosts");
  const Topology unequal = topology_on_hosts({0, 0, 1});
  EXPECT_THROW(choose_algorithm(Collective::kAllreduce,
                                {.bytes = 16, .size = 3, .topology = &unequal}, &forced),
               std::invalid_argument);
}

// Two regions of two hosts of two ranks each, and the same with the hosts interleaved in rank
// order: host -> region -> world.
std::vector<Topology> regions_of_hosts() {
  std::vector<Topology> layouts;
  for (const auto& [regions, hosts] :
       {std::pair{std::vector<int>{0, 0, 0, 0, 1, 1, 1, 1},
                  std::vector<int>{0, 0, 1, 1, 2, 2, 3, 3}},
        std::pair{std::vector<int>{0, 1, 0, 1, 0, 1, 0, 1},
                  std::vector<int>{0, 1, 2, 3, 0, 1, 2, 3}},
        std::pair{std::vector<int>{0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 1, 1},
                  std::vector<int>{0, 0, 1, 1, 2, 2, 3, 3, 4, 4, 5, 5}}}) {
    Topology topology = topology_from_groups(regions);
    topology.host_of = hosts;
    layouts.push_back(std::move(topology));
  }
  return layouts;
}

TEST(HostTier, ThroughRegionsMatchesReference) {
  for (Topology& topology : regions_of_hosts()) {
    ASSERT_TRUE(hosts_compose_with_regions(topology));
    const int size = topology.size();
    OneHostGroup group(testing::connect_memory_ranks(size), std::move(topology));
    ASSERT_EQ(group.size(), size);
    expect_reference(group, DataType::kFloat32, ReduceOp::kSum, (size_t{3} << 20) + 5, nullptr);
    expect_reference(group, DataType::kInt64, ReduceOp::kProduct, (size_t{1} << 17) + 1, nullptr);
  }
}

// Allreduces `count` floats, rank + i % modulus on each rank, and checks the exact sums.
void allreduce_pattern(OneHostGroup& group, size_t count, int modulus) {
  const int size = group.size();
  std::vector<std::vector<float>> data(static_cast<size_t>(size), std::vector<float>(count));
  for (int rank = 0; rank < size; ++rank) {
    for (size_t i = 0; i < count; ++i) {
      data[static_cast<size_t>(rank)][i] = static_cast<float>(rank + static_cast<int>(i % modulus));
    }
  }
  group.on_every_rank([&](int rank, const CollectiveContext& ctx) {
    allreduce(ctx, data[static_cast<size_t>(rank)].data(), count, DataType::kFloat32,
              ReduceOp::kSum);
  });
  for (int rank = 0; rank < size; ++rank) {
    for (size_t i = 0; i < count; i += 4099) {
      const auto want =
          static_cast<float>(size * (size - 1) / 2 + size * static_cast<int>(i % modulus));
      ASSERT_EQ(data[static_cast<size_t>(rank)][i], want) << "rank " << rank << " element " << i;
    }
  }
}

uint64_t bytes_sent(transport::Transport& transport) {
  uint64_t total = 0;
  for (const transport::PeerTraffic& peer : transport.traffic()) total += peer.bytes_sent;
  return total;
}

// 16 MiB over real sockets: on one host only the barriers and signatures cross them; on two
// hosts (same processes, another topology) the ring moves megabytes.
TEST(SharedMemoryAllreduceTransport, DataStaysOffTheSocketsOnlyOnOneHost) {
  for (const std::string& kind : testing::transport_kinds()) {
    for (const std::vector<int>& hosts : {std::vector<int>{0, 0, 0}, std::vector<int>{0, 0, 1}}) {
      OneHostGroup group(make_group(kind, 3), hosts);
      std::vector<uint64_t> before(3);
      for (int rank = 0; rank < 3; ++rank) before[rank] = bytes_sent(group.transport(rank));
      ASSERT_NO_FATAL_FAILURE(allreduce_pattern(group, size_t{4} << 20, 7)) << kind;
      for (int rank = 0; rank < 3; ++rank) {
        const uint64_t sent = bytes_sent(group.transport(rank)) - before[rank];
        if (hosts[2] == 0) {
          EXPECT_LT(sent, uint64_t{64} << 10) << kind << " rank " << rank;
        } else {
          EXPECT_GT(sent, uint64_t{8} << 20) << kind << " rank " << rank;
        }
      }
    }
  }
}

TEST(SharedMemoryAllreduceTransport, ForcingItOnTwoHostsIsRefused) {
  const Topology two_hosts = topology_on_hosts({0, 1});
  const AlgorithmOverrides forced = AlgorithmOverrides::parse("allreduce:shared_memory");
  EXPECT_THROW(
      choose_algorithm(Collective::kAllreduce,
                       {.bytes = 1 << 20, .size = 2, .topology = &two_hosts, .shared_memory = true},
                       &forced),
      std::invalid_argument);
  const Topology one_host = topology_on_hosts({0, 0});
  EXPECT_EQ(
      choose_algorithm(Collective::kAllreduce,
                       {.bytes = 1 << 20, .size = 2, .topology = &one_host, .shared_memory = true},
                       nullptr),
      Algorithm::kSharedMemory);
  // A group whose memory could not be shared (or that has none) never picks it.
  EXPECT_NE(
      choose_algorithm(Collective::kAllreduce,
                       {.bytes = 1 << 20, .size = 2, .topology = &one_host, .shared_memory = false},
                       nullptr),
      Algorithm::kSharedMemory);
}

// Bytes that ranks in region `from` sent to ranks in other regions.
uint64_t bytes_leaving_region(OneHostGroup& group, const Topology& topology, int from,
                              const std::vector<std::vector<uint64_t>>& before) {
  uint64_t total = 0;
  for (int rank = 0; rank < group.size(); ++rank) {
    if (topology.region_of[static_cast<size_t>(rank)] != from) continue;
    const std::vector<transport::PeerTraffic> traffic = group.transport(rank).traffic();
    for (size_t peer = 0; peer < traffic.size(); ++peer) {
      if (topology.region_of[peer] == from) continue;
      total += traffic[peer].bytes_sent - before[static_cast<size_t>(rank)][peer];
    }
  }
  return total;
}

// Over real sockets, 2 regions x 2 hosts x 2 ranks: the slow links between the regions carry
// what an allreduce between two regions must, 2(R-1)S in all (S out of each region), not the
// 3S of a flat ring over the four hosts' shards.
TEST(HostTierTransport, BytesBetweenRegionsAreTheOptimum) {
  Topology topology = regions_of_hosts()[0];
  OneHostGroup group(make_group("ucx", 8), topology);
  const size_t count = size_t{4} << 20;
  const uint64_t payload = count * sizeof(float);
  std::vector<std::vector<uint64_t>> before(8, std::vector<uint64_t>(8, 0));
  for (int rank = 0; rank < 8; ++rank) {
    const std::vector<transport::PeerTraffic> traffic = group.transport(rank).traffic();
    for (size_t peer = 0; peer < traffic.size(); ++peer) {
      before[static_cast<size_t>(rank)][peer] = traffic[peer].bytes_sent;
    }
  }
  ASSERT_NO_FATAL_FAILURE(allreduce_pattern(group, count, 5));
  for (int region = 0; region < 2; ++region) {
    const uint64_t left = bytes_leaving_region(group, topology, region, before);
    EXPECT_GE(left, payload) << "region " << region;
    EXPECT_LE(left, payload + payload / 100 + (uint64_t{64} << 10)) << "region " << region;
  }
}

}  // namespace
}  // namespace torchwan::engine
