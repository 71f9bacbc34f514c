// Hierarchical allreduce over the in-process memory transport, for world sizes 2..6 and region
// layouts equal and unequal. Results are checked against expected values computed here (exact
// for integers, and for the floats of reduction_cases.h, which every order sums exactly), every
// rank's result must be bit-identical, and order-sensitive floats must stay close to the flat
// allreduce.
#include <gtest/gtest.h>

#include <chrono>
#include <cstring>
#include <functional>
#include <stdexcept>
#include <string>
#include <vector>

#include "csrc/collectives.h"
#include "csrc/topology.h"
#include "memory_transport.h"
#include "reduction_cases.h"
#include "test_support.h"
#include "transport/counting_transport.h"

namespace torchwan::engine {
namespace {

using Clock = std::chrono::steady_clock;
using namespace std::chrono_literals;
using namespace test_data;

// Region id of every rank; the world size is its length.
using Layout = std::vector<int>;

std::string layout_name(const ::testing::TestParamInfo<Layout>& info) {
  std::string name = "ranks" + std::to_string(info.param.size()) + "_";
  for (int region : info.param) name += static_cast<char>('a' + region);
  return name;
}

class Hierarchical : public ::testing::TestWithParam<Layout> {
 protected:
  int size() const { return static_cast<int>(GetParam().size()); }

  // Runs body(rank, ctx) on every rank with the same fresh sequence number; the context carries
  // the layout's topology unless `flat`.
  void on_every_rank(const std::function<void(int, const CollectiveContext&)>& body,
                     bool flat = false) {
    if (ranks_.empty()) ranks_ = testing::connect_memory_ranks(size());
    const uint32_t seq = next_seq_++;
    const auto deadline = Clock::now() + 60s;
    testing::run_on_threads(size(), [&](int rank) {
      const CollectiveContext ctx{*ranks_[static_cast<size_t>(rank)], seq, deadline, nullptr,
                                  flat ? nullptr : &topology_};
      body(rank, ctx);
    });
  }

  static void expect_bit_identical(const std::vector<std::vector<uint8_t>>& outputs) {
    for (size_t rank = 1; rank < outputs.size(); ++rank) {
      ASSERT_EQ(0, std::memcmp(outputs[rank].data(), outputs[0].data(), outputs[0].size()))
          << "rank " << rank << " differs from rank 0";
    }
  }

  const Topology topology_ = topology_from_groups(GetParam());
  std::vector<std::unique_ptr<transport::Transport>> ranks_;
  uint32_t next_seq_ = 1;
};

// Counts cover: fewer elements than region members (empty shards), the leader scheme, the striped
// path (at least 64 KiB), and multi-chunk pipelines with the chain reduce/broadcast (over 4 MiB).
TEST_P(Hierarchical, AllreduceMatchesReference) {
  for (size_t count : {size_t{1}, size_t{5}, size_t{1000}, size_t{70001}, (size_t{1} << 19) + 5}) {
    for (DataType dtype : {DataType::kFloat32, DataType::kInt64}) {
      for (ReduceOp op : {ReduceOp::kSum, ReduceOp::kMax}) {
        const ReductionCase c = make_reduction_case(dtype, op, count, size(), count + 3);
        std::vector<std::vector<uint8_t>> outputs = c.inputs;
        on_every_rank([&](int rank, const CollectiveContext& ctx) {
          allreduce(ctx, outputs[static_cast<size_t>(rank)].data(), count, dtype, op);
        });
        for (size_t rank = 0; rank < outputs.size(); ++rank) {
          ASSERT_TRUE(equal_values(dtype, outputs[rank], c.expected))
              << dtype_name(dtype) << " " << reduce_op_name(op) << " count " << count << " rank "
              << rank;
        }
        expect_bit_identical(outputs);
      }
    }
  }
}

// Sums whose bits depend on the reduction order: every rank must agree to the bit, and the result
// must be as close to the flat allreduce's as reordering allows.
TEST_P(Hierarchical, OrderSensitiveFloatsAgreeWithFlatAllreduce) {
  for (size_t count : {size_t{3000}, size_t{300001}}) {
    const OrderSensitiveFloats inputs = order_sensitive_floats(size(), count);
    std::vector<std::vector<float>> data = inputs.data;
    std::vector<std::vector<float>> flat = inputs.data;
    on_every_rank([&](int rank, const CollectiveContext& ctx) {
      allreduce(ctx, data[static_cast<size_t>(rank)].data(), count, DataType::kFloat32,
                ReduceOp::kSum);
    });
    on_every_rank(
        [&](int rank, const CollectiveContext& ctx) {
          allreduce(ctx, flat[static_cast<size_t>(rank)].data(), count, DataType::kFloat32,
                    ReduceOp::kSum);
        },
        /*flat=*/true);
    ASSERT_TRUE(agreed_sum_near(data, flat[0], inputs)) << "count " << count;
  }
}

TEST_P(Hierarchical, TopologyOfAnotherSizeIsRejectedBeforeAnyTraffic) {
  Layout bigger = GetParam();
  bigger.push_back(0);
  const Topology wrong = topology_from_groups(bigger);
  on_every_rank([&](int, const CollectiveContext& ctx) {
    CollectiveContext with_wrong = ctx;
    with_wrong.topology = &wrong;
    int64_t value = 1;
    EXPECT_THROW(allreduce(with_wrong, &value, 1, DataType::kInt64, ReduceOp::kSum),
                 std::invalid_argument);
  });
}

// Messages rank 0 sent to each rank in one int64 SUM allreduce of `count` elements on `topology`,
// over counting memory transports; the sums are checked exact.
std::vector<uint64_t> messages_rank0_sends(const Topology& topology, size_t count) {
  const int size = topology.size();
  std::vector<std::unique_ptr<transport::Transport>> ranks;
  for (auto& inner : testing::connect_memory_ranks(size)) {
    ranks.push_back(std::make_unique<transport::CountingTransport>(std::move(inner)));
  }
  const ReductionCase c = make_reduction_case(DataType::kInt64, ReduceOp::kSum, count, size, 5);
  std::vector<std::vector<uint8_t>> outputs = c.inputs;
  const auto deadline = Clock::now() + 60s;
  testing::run_on_threads(size, [&](int rank) {
    const CollectiveContext ctx{*ranks[static_cast<size_t>(rank)], 1, deadline, nullptr, &topology};
    allreduce(ctx, outputs[static_cast<size_t>(rank)].data(), count, DataType::kInt64,
              ReduceOp::kSum);
  });
  for (const auto& output : outputs)
    EXPECT_TRUE(equal_values(DataType::kInt64, output, c.expected));
  std::vector<uint64_t> sent;
  for (const transport::PeerTraffic& peer : ranks[0]->traffic()) sent.push_back(peer.messages_sent);
  return sent;
}

// The step between regions is a flat allreduce among one rank per region, chosen as a group of
// that size would choose it: with the round trips measured long, the cost model's one-step
// exchange (a message to each other region) replaces the ring (messages to the next region only).
// Three regions of two ranks; each rank's shard (280 KB, then 5 MiB) crosses between the regions.
TEST(HierarchicalStepBetweenRegions, TakesTheCostModelsChoiceWhereRoundTripsWereMeasured) {
  const Layout layout = {0, 1, 2, 0, 1, 2};
  Topology topology = topology_from_groups(layout);
  const size_t count = 70001;
  const std::vector<uint64_t> by_size = messages_rank0_sends(topology, count);
  EXPECT_GT(by_size[1], 1u);  // the ring's chunks, to the next region's rank
  EXPECT_EQ(by_size[2], 0u);  // ... and nothing to the one before
  topology.max_rtt_ms = 50;
  const std::vector<uint64_t> by_model = messages_rank0_sends(topology, count);
  EXPECT_EQ(by_model[1], 1u);
  EXPECT_EQ(by_model[2], 1u);
  EXPECT_EQ(by_model[3], by_size[3]);  // inside the region nothing changed
  // 5 MiB shards: two steps (111 ms predicted against the ring's 126), one message of each step
  // to each other region.
  const std::vector<uint64_t> two_steps = messages_rank0_sends(topology, size_t{5} << 18);
  EXPECT_EQ(two_steps[1], 2u);
  EXPECT_EQ(two_steps[2], 2u);
}

INSTANTIATE_TEST_SUITE_P(Layouts, Hierarchical,
                         ::testing::Values(Layout{0, 1}, Layout{0, 0}, Layout{0, 0, 1},
                                           Layout{0, 1, 0}, Layout{0, 0, 1, 1}, Layout{0, 1, 0, 1},
                                           Layout{0, 0, 0, 1}, Layout{0, 0, 1, 1, 2},
                                           Layout{0, 1, 1, 1, 0}, Layout{0, 0, 0, 1, 1, 1},
                                           Layout{0, 1, 2, 0, 1, 2}, Layout{0, 0, 0, 0, 1, 2}),
                         layout_name);

}  // namespace
}  // namespace torchwan::engine
