// The algorithm table: the automatic rules pick what the thresholds say, every forced algorithm
// gives the reference result on real ranks (memory fabric: threads of this process), and bad or
// impossible overrides are refused with the accepted names.
#include "csrc/algorithm_table.h"

#include <gtest/gtest.h>

#include <chrono>
#include <cstdint>
#include <numeric>
#include <stdexcept>
#include <string>
#include <vector>

#include "csrc/collectives.h"
#include "csrc/topology.h"
#include "memory_transport.h"
#include "test_support.h"

namespace torchwan::engine {
namespace {

using namespace std::chrono_literals;

TEST(AlgorithmTable, AutomaticRulesFollowTheThresholds) {
  struct Case {
    Collective collective;
    size_t bytes;
    int size;
    Algorithm expected;
  };
  const Case cases[] = {
      {Collective::kAllreduce, 1024, 4, Algorithm::kDirectAllreduce},
      {Collective::kAllreduce, size_t{32} << 10, 4, Algorithm::kRecursiveDoubling},
      {Collective::kAllreduce, size_t{64} << 20, 4, Algorithm::kRing},
      {Collective::kBroadcast, 1024, 4, Algorithm::kDirect},
      {Collective::kBroadcast, size_t{1} << 20, 4, Algorithm::kBinomialTree},
      {Collective::kBroadcast, size_t{64} << 20, 4, Algorithm::kChain},
      {Collective::kReduce, size_t{64} << 20, 4, Algorithm::kChain},
      {Collective::kBarrier, 0, 4, Algorithm::kDirect},
      {Collective::kBarrier, 0, 100, Algorithm::kDissemination},
      {Collective::kAllgather, 1024, 4, Algorithm::kDirect},
      {Collective::kReduceScatter, size_t{1} << 20, 4, Algorithm::kRing},
  };
  for (const Case& c : cases) {
    EXPECT_EQ(choose_algorithm(c.collective, {c.bytes, c.size, nullptr}, nullptr), c.expected)
        << collective_name(c.collective) << " of " << c.bytes << " bytes on " << c.size << " ranks";
  }
}

TEST(AlgorithmTable, OverridesParseAndRefuseWhatIsNotInTheTable) {
  const AlgorithmOverrides overrides = AlgorithmOverrides::parse("allreduce:ring,broadcast:chain");
  EXPECT_EQ(overrides.describe(), "allreduce:ring,broadcast:chain");
  EXPECT_EQ(choose_algorithm(Collective::kAllreduce, {16, 4, nullptr}, &overrides),
            Algorithm::kRing);
  EXPECT_EQ(choose_algorithm(Collective::kReduce, {16, 4, nullptr}, &overrides),
            Algorithm::kBinomialTree);  // not named: automatic
  EXPECT_TRUE(AlgorithmOverrides::parse("").empty());
  for (const char* bad : {"allreduce", "allreduce:chain", "gather:direct", "ring",
                          "allreduce:ring,allreduce:recursive_doubling"}) {
    EXPECT_THROW(AlgorithmOverrides::parse(bad), std::invalid_argument) << bad;
  }
  try {
    AlgorithmOverrides::parse("allreduce:tree");
  } catch (const std::invalid_argument& error) {
    EXPECT_NE(std::string(error.what()).find("allreduce:recursive_doubling"), std::string::npos)
        << error.what();
  }
  const AlgorithmOverrides hierarchical = AlgorithmOverrides::parse("allreduce:hierarchical");
  EXPECT_THROW(choose_algorithm(Collective::kAllreduce, {16, 4, nullptr}, &hierarchical),
               std::invalid_argument);
}

// Runs `body` on 4 memory-fabric ranks with `overrides` in every rank's context.
void on_four_ranks(const AlgorithmOverrides& overrides, uint32_t seq,
                   const std::function<void(int, const CollectiveContext&)>& body) {
  auto ranks = testing::connect_memory_ranks(4);
  const auto deadline = std::chrono::steady_clock::now() + 60s;
  testing::run_on_threads(4, [&](int rank) {
    CollectiveContext ctx{*ranks[static_cast<size_t>(rank)], seq, deadline};
    ctx.algorithms = &overrides;
    body(rank, ctx);
  });
}

TEST(AlgorithmTable, EveryForcedAlgorithmGivesTheReferenceResult) {
  // Sizes on both sides of every automatic threshold, so each algorithm also runs where it would
  // not be chosen by itself.
  for (size_t count : {size_t{5}, size_t{3000}, (size_t{1} << 20) + 7}) {
    for (const char* forced : {"allreduce:ring", "allreduce:recursive_doubling", "allreduce:direct",
                               "allreduce:two_step"}) {
      std::vector<std::vector<int64_t>> data(4, std::vector<int64_t>(count));
      for (int r = 0; r < 4; ++r) std::iota(data[r].begin(), data[r].end(), r * 7);
      const auto overrides = AlgorithmOverrides::parse(forced);
      on_four_ranks(overrides, 1, [&](int rank, const CollectiveContext& ctx) {
        allreduce(ctx, data[static_cast<size_t>(rank)].data(), count, DataType::kInt64,
                  ReduceOp::kSum);
      });
      for (int r = 0; r < 4; ++r) {
        for (size_t i = 0; i < count; i += count / 3 + 1) {
          ASSERT_EQ(data[r][i], static_cast<int64_t>(4 * i + 7 * (0 + 1 + 2 + 3)))
              << forced << " count " << count << " rank " << r;
        }
      }
    }
    for (const char* forced : {"broadcast:direct", "broadcast:binomial_tree", "broadcast:chain"}) {
      const size_t bytes = count * 8;
      std::vector<std::vector<uint8_t>> data(4, std::vector<uint8_t>(bytes, 0));
      data[2] = testing::pattern_bytes(bytes, 99);
      const auto overrides = AlgorithmOverrides::parse(forced);
      on_four_ranks(overrides, 1, [&](int rank, const CollectiveContext& ctx) {
        broadcast(ctx, data[static_cast<size_t>(rank)].data(), bytes, 2);
      });
      for (int r = 0; r < 4; ++r) EXPECT_EQ(data[r], data[2]) << forced << " rank " << r;
    }
    for (const char* forced : {"reduce:binomial_tree", "reduce:chain"}) {
      std::vector<std::vector<int64_t>> data(4, std::vector<int64_t>(count, 3));
      const auto overrides = AlgorithmOverrides::parse(forced);
      on_four_ranks(overrides, 1, [&](int rank, const CollectiveContext& ctx) {
        reduce(ctx, data[static_cast<size_t>(rank)].data(), count, DataType::kInt64, ReduceOp::kSum,
               1);
      });
      EXPECT_EQ(data[1], std::vector<int64_t>(count, 12)) << forced << " count " << count;
    }
    for (const char* forced : {"allgather:direct", "allgather:ring"}) {
      const size_t block = count * 2 + 1;
      std::vector<std::vector<uint8_t>> out(4, std::vector<uint8_t>(block * 4));
      std::vector<uint8_t> expected;
      for (int r = 0; r < 4; ++r) {
        const auto mine = testing::pattern_bytes(block, static_cast<uint32_t>(r));
        expected.insert(expected.end(), mine.begin(), mine.end());
      }
      const auto overrides = AlgorithmOverrides::parse(forced);
      on_four_ranks(overrides, 1, [&](int rank, const CollectiveContext& ctx) {
        const auto mine = testing::pattern_bytes(block, static_cast<uint32_t>(rank));
        allgather(ctx, mine.data(), out[static_cast<size_t>(rank)].data(), block);
      });
      for (int r = 0; r < 4; ++r) EXPECT_EQ(out[r], expected) << forced << " rank " << r;
    }
    for (const char* forced : {"reduce_scatter:direct", "reduce_scatter:ring"}) {
      std::vector<std::vector<int64_t>> in(4, std::vector<int64_t>(count * 4));
      for (int r = 0; r < 4; ++r) std::iota(in[r].begin(), in[r].end(), r * 100);
      std::vector<std::vector<int64_t>> out(4, std::vector<int64_t>(count));
      const auto overrides = AlgorithmOverrides::parse(forced);
      on_four_ranks(overrides, 1, [&](int rank, const CollectiveContext& ctx) {
        reduce_scatter(ctx, in[static_cast<size_t>(rank)].data(),
                       out[static_cast<size_t>(rank)].data(), count, DataType::kInt64,
                       ReduceOp::kSum);
      });
      for (int r = 0; r < 4; ++r) {
        for (size_t i = 0; i < count; i += count / 3 + 1) {
          const auto j = static_cast<int64_t>(static_cast<size_t>(r) * count + i);
          ASSERT_EQ(out[r][i], 4 * j + 100 * (0 + 1 + 2 + 3)) << forced << " rank " << r;
        }
      }
    }
  }
  for (const char* forced : {"barrier:direct", "barrier:dissemination"}) {
    const auto overrides = AlgorithmOverrides::parse(forced);
    on_four_ranks(overrides, 1, [&](int, const CollectiveContext& ctx) { barrier(ctx); });
  }
}

}  // namespace
}  // namespace torchwan::engine
