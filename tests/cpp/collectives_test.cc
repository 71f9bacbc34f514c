// Collectives over real transports (ranks as threads, loopback) and over an in-process memory
// transport, for world sizes 1..5. Results are checked against expected values computed here
// independently (integer arithmetic, or floats chosen so that every reduction order is exact),
// and every rank's result must be bit-identical to every other rank's.
#include "csrc/collectives.h"

#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <cmath>
#include <complex>
#include <cstdio>
#include <cstring>
#include <functional>
#include <string>
#include <thread>
#include <vector>

#include "csrc/algorithm_table.h"
#include "csrc/algorithm_tuning.h"
#include "csrc/dtype.h"
#include "csrc/float_conversions.h"
#include "csrc/topology.h"
#include "memory_transport.h"
#include "reduction_cases.h"
#include "test_support.h"
#include "transport/device.h"
#include "transport/errors.h"

namespace torchwan::engine {
namespace {

using Clock = std::chrono::steady_clock;
using namespace std::chrono_literals;

constexpr size_t kCounts[] = {0, 1, 7, 1000, (size_t{1} << 20) + 5};

using namespace test_data;

// ------------------------------------------------------------------ tags

TEST(CollectiveTags, LayoutSeparatesCallsStepsAndPointToPoint) {
  EXPECT_EQ(collective_tag(1, 0), transport::Tag{1} << 16);
  EXPECT_EQ(collective_tag(3, 7), (transport::Tag{3} << 16) | 7);
  EXPECT_EQ(collective_tag(3, 65536 + 7), collective_tag(3, 7));  // steps wrap modulo 2^16
  EXPECT_EQ(collective_tag(0x8005u, 1), collective_tag(5, 1));    // seq keeps 15 bits
  EXPECT_NE(collective_tag(0x4005u, 1), collective_tag(5, 1));
  EXPECT_EQ(collective_tag(0xffffffffu, 0xffffu) >> 31, 0u);  // bit 31 stays clear
  EXPECT_EQ(p2p_tag(9), (transport::Tag{1} << 31) | 9);
  // Every tag stays in a group's 32 bits, below the device's channel.
  EXPECT_LT(collective_tag(0xffffffffu, 0xffffu), transport::kMaxGroupTag);
  EXPECT_LT(p2p_tag(0x7fffffffu), transport::kMaxGroupTag);
  EXPECT_NE(p2p_tag(0), collective_tag(0, 0));
}

// ------------------------------------------------------------------ fixture

class Collectives : public KindAndSizeTest {
 protected:
  // Runs body(rank, ctx) on every rank, all with the same fresh sequence number.
  void on_every_rank(const std::function<void(int, const CollectiveContext&)>& body,
                     std::chrono::milliseconds timeout = 60s) {
    auto& ranks = transports();
    const uint32_t seq = next_seq_++;
    const auto deadline = Clock::now() + timeout;
    testing::run_on_threads(size(), [&](int rank) {
      CollectiveContext ctx{*ranks[static_cast<size_t>(rank)], seq, deadline};
      ctx.topology = topology_;
      ctx.algorithms = algorithms_;
      body(rank, ctx);
    });
  }

  // A float32 SUM allreduce of `count` elements: the exact sum, the same bits on every rank.
  void expect_float32_sum_allreduce(size_t count) {
    const ReductionCase c =
        make_reduction_case(DataType::kFloat32, ReduceOp::kSum, count, size(), count);
    std::vector<std::vector<uint8_t>> outputs = c.inputs;
    on_every_rank([&](int rank, const CollectiveContext& ctx) {
      allreduce(ctx, outputs[static_cast<size_t>(rank)].data(), count, DataType::kFloat32,
                ReduceOp::kSum);
    });
    for (const auto& output : outputs) {
      ASSERT_TRUE(equal_values(DataType::kFloat32, output, c.expected)) << "count " << count;
    }
    expect_bit_identical(outputs);
  }

  // Every dtype and op the engine reduces, on each count: the reference's values, the same bits
  // on every rank. `seed` picks the inputs.
  void expect_every_dtype_and_op_allreduce(std::initializer_list<size_t> counts, uint64_t seed) {
    for (size_t count : counts) {
      for (DataType dtype : kAllTypes) {
        for (ReduceOp op : kAllOps) {
          if (!reduce_supported(dtype, op)) continue;
          const ReductionCase c = make_reduction_case(dtype, op, count, size(), seed);
          std::vector<std::vector<uint8_t>> outputs = c.inputs;
          on_every_rank([&](int rank, const CollectiveContext& ctx) {
            allreduce(ctx, outputs[static_cast<size_t>(rank)].data(), count, dtype, op);
          });
          for (const auto& output : outputs) {
            ASSERT_TRUE(equal_values(dtype, output, c.expected))
                << dtype_name(dtype) << " " << reduce_op_name(op) << " count " << count;
          }
          expect_bit_identical(outputs);
        }
      }
    }
  }

  // A broadcast of `bytes` from every root in turn reaches every rank intact.
  void expect_broadcast_from_every_root(size_t bytes) {
    for (int root = 0; root < size(); ++root) {
      const std::vector<uint8_t> expected =
          testing::pattern_bytes(bytes, static_cast<uint32_t>(root * 131 + bytes));
      std::vector<std::vector<uint8_t>> buffers(static_cast<size_t>(size()),
                                                std::vector<uint8_t>(bytes, 0xAB));
      buffers[static_cast<size_t>(root)] = expected;
      on_every_rank([&](int rank, const CollectiveContext& ctx) {
        broadcast(ctx, buffers[static_cast<size_t>(rank)].data(), bytes, root);
      });
      for (int rank = 0; rank < size(); ++rank) {
        ASSERT_TRUE(buffers[static_cast<size_t>(rank)] == expected)
            << bytes << " bytes from root " << root << " wrong on rank " << rank;
      }
    }
  }

  // Every rank's output bytes must equal rank 0's.
  static void expect_bit_identical(const std::vector<std::vector<uint8_t>>& outputs) {
    for (size_t rank = 1; rank < outputs.size(); ++rank) {
      ASSERT_EQ(outputs[rank].size(), outputs[0].size());
      if (outputs[0].empty()) continue;  // memcmp must not see the null data() of an empty vector
      ASSERT_EQ(0, std::memcmp(outputs[rank].data(), outputs[0].data(), outputs[0].size()))
          << "rank " << rank << " differs from rank 0";
    }
  }

  // Connected on first use, so skipped tests cost nothing.
  std::vector<std::unique_ptr<transport::Transport>>& transports() {
    if (ranks_.empty()) ranks_ = make_group(kind(), size());
    return ranks_;
  }

  std::vector<std::unique_ptr<transport::Transport>> ranks_;
  uint32_t next_seq_ = 1;
  // The topology every call of the test runs with (none unless the test sets one).
  const Topology* topology_ = nullptr;
  // The algorithms every call is forced to take (none unless the test sets them).
  const AlgorithmOverrides* algorithms_ = nullptr;
};

// ------------------------------------------------------------------ allreduce

TEST_P(Collectives, AllreduceFloat32SumEveryCount) {
  for (size_t count : kCounts) expect_float32_sum_allreduce(count);
}

TEST_P(Collectives, AllreduceEveryDtypeAndOp) {
  // 37 elements take the small-message path; 70001 elements (at least 64 KiB) the ring.
  expect_every_dtype_and_op_allreduce({37, 70001}, 17);
}

// Random floats whose sum depends on the order of additions: all ranks must still agree to the
// bit, and the result must be close to the exact sum.
TEST_P(Collectives, AllreduceOrderSensitiveFloatsAreBitIdenticalOnEveryRank) {
  for (size_t count : {size_t{1000}, size_t{3000}, (size_t{1} << 20) + 5}) {
    const OrderSensitiveFloats inputs = order_sensitive_floats(size(), count);
    std::vector<std::vector<float>> data = inputs.data;
    on_every_rank([&](int rank, const CollectiveContext& ctx) {
      allreduce(ctx, data[static_cast<size_t>(rank)].data(), count, DataType::kFloat32,
                ReduceOp::kSum);
    });
    ASSERT_TRUE(agreed_sum_near(data, inputs.exact, inputs)) << "count " << count;
  }
}

// The two-step allreduce cuts the buffer into the ring's segments, some of them empty when there
// are fewer elements than ranks; each segment's owner folds it in rank order as the direct
// exchange folds the whole buffer, so the two agree to the bit, even on order-sensitive floats.
TEST_P(Collectives, TwoStepAllreduceIsExactAndBitIdenticalToTheDirectExchange) {
  const AlgorithmOverrides two_step = AlgorithmOverrides::parse("allreduce:two_step");
  const AlgorithmOverrides direct = AlgorithmOverrides::parse("allreduce:direct");
  algorithms_ = &two_step;
  expect_every_dtype_and_op_allreduce({1, 3, 37, 70001}, 23);
  const size_t count = 3001;
  const OrderSensitiveFloats inputs = order_sensitive_floats(size(), count);
  std::vector<std::vector<float>> by_two_step = inputs.data;
  std::vector<std::vector<float>> by_direct = inputs.data;
  algorithms_ = &two_step;
  on_every_rank([&](int rank, const CollectiveContext& ctx) {
    allreduce(ctx, by_two_step[static_cast<size_t>(rank)].data(), count, DataType::kFloat32,
              ReduceOp::kSum);
  });
  algorithms_ = &direct;
  on_every_rank([&](int rank, const CollectiveContext& ctx) {
    allreduce(ctx, by_direct[static_cast<size_t>(rank)].data(), count, DataType::kFloat32,
              ReduceOp::kSum);
  });
  algorithms_ = nullptr;
  for (int rank = 0; rank < size(); ++rank) {
    ASSERT_EQ(0, std::memcmp(by_two_step[static_cast<size_t>(rank)].data(), by_direct[0].data(),
                             count * sizeof(float)))
        << "rank " << rank << " differs from the direct exchange";
  }
}

// MIN of +0/-0 and SUM of NaNs with different payloads depend on operand order in their bits;
// the small-message algorithm combines in a canonical order so every rank still agrees.
TEST_P(Collectives, AllreduceSignedZerosAndNaNPayloadsAreBitIdentical) {
  const size_t count = 16;
  for (ReduceOp op : {ReduceOp::kMin, ReduceOp::kMax, ReduceOp::kSum}) {
    std::vector<std::vector<float>> data(static_cast<size_t>(size()), std::vector<float>(count));
    for (int rank = 0; rank < size(); ++rank) {
      for (size_t i = 0; i < count; ++i) {
        const bool negative = ((static_cast<size_t>(rank) + i) % 2) == 1;
        data[static_cast<size_t>(rank)][i] =
            i < count / 2 ? (negative ? -0.0f : 0.0f)
                          : floats::float_from_bits(0x7FC00000u | static_cast<uint32_t>(rank + 1));
      }
    }
    on_every_rank([&](int rank, const CollectiveContext& ctx) {
      allreduce(ctx, data[static_cast<size_t>(rank)].data(), count, DataType::kFloat32, op);
    });
    for (int rank = 1; rank < size(); ++rank) {
      ASSERT_EQ(0, std::memcmp(data[static_cast<size_t>(rank)].data(), data[0].data(),
                               count * sizeof(float)))
          << reduce_op_name(op) << ": rank " << rank << " differs from rank 0";
    }
    EXPECT_TRUE(std::isnan(data[0][count - 1]));
  }
}

TEST_P(Collectives, AllreduceRejectsUnsupportedOpsBeforeAnyTraffic) {
  on_every_rank([&](int, const CollectiveContext& ctx) {
    double value[2] = {1, 2};
    EXPECT_THROW(allreduce(ctx, value, 1, DataType::kComplex128, ReduceOp::kMax),
                 std::invalid_argument);
    EXPECT_THROW(allreduce(ctx, value, 2, DataType::kFloat64, ReduceOp::kBxor),
                 std::invalid_argument);
  });
}

TEST_P(Collectives, Allreduce64MiBFloat32) {
  if (size() != 2 && size() != 4) GTEST_SKIP() << "run at 2 and 4 ranks only";
  const size_t count = (size_t{64} << 20) / sizeof(float);
  std::vector<std::vector<float>> data(static_cast<size_t>(size()), std::vector<float>(count));
  for (int rank = 0; rank < size(); ++rank) {
    for (size_t i = 0; i < count; ++i) {
      data[static_cast<size_t>(rank)][i] = static_cast<float>((i + static_cast<size_t>(rank)) % 64);
    }
  }
  double seconds = 0;
  on_every_rank([&](int rank, const CollectiveContext& ctx) {
    const auto start = Clock::now();
    allreduce(ctx, data[static_cast<size_t>(rank)].data(), count, DataType::kFloat32,
              ReduceOp::kSum);
    if (rank == 0) seconds = std::chrono::duration<double>(Clock::now() - start).count();
  });
  const double algbw = (64.0 * (1 << 20)) / seconds / 1e9;
  std::printf("[%s, %d ranks] allreduce 64 MiB float32: %.3f s, algbw %.2f GB/s, busbw %.2f GB/s\n",
              kind().c_str(), size(), seconds, algbw, algbw * 2 * (size() - 1) / size());
  for (size_t i = 0; i < count; ++i) {
    float expected = 0;
    for (int rank = 0; rank < size(); ++rank) {
      expected += static_cast<float>((i + static_cast<size_t>(rank)) % 64);
    }
    for (int rank = 0; rank < size(); ++rank) {
      ASSERT_EQ(data[static_cast<size_t>(rank)][i], expected)
          << "rank " << rank << " element " << i;
    }
  }
}

// ------------------------------------------------------------------ broadcast

TEST_P(Collectives, BroadcastEveryCountFromEveryRoot) {
  std::vector<size_t> byte_counts(std::begin(kCounts), std::end(kCounts));
  byte_counts.push_back((size_t{5} << 20) + 3);  // above the tree threshold: the pipelined chain
  for (size_t bytes : byte_counts) expect_broadcast_from_every_root(bytes);
}

// A group whose round trips were measured long (50 ms): allreduce up to 4 MiB takes recursive
// doubling and small broadcasts go directly from the root, instead of the ring and the tree.
TEST_P(Collectives, LatencyBoundAlgorithmsOfAFarGroup) {
  Topology far;
  far.regions = {{}};
  for (int rank = 0; rank < size(); ++rank) {
    far.regions[0].push_back(rank);
    far.region_of.push_back(0);
  }
  far.max_rtt_ms = 50;
  ASSERT_EQ(latency_bound_max_bytes(far.max_rtt_ms), size_t{4} << 20);
  topology_ = &far;
  for (size_t count : {size_t{70000}, size_t{300001}}) expect_float32_sum_allreduce(count);
  for (size_t bytes : {size_t{100}, size_t{100000}}) expect_broadcast_from_every_root(bytes);
}

TEST_P(Collectives, BroadcastRejectsBadRoot) {
  on_every_rank([&](int, const CollectiveContext& ctx) {
    uint8_t byte = 0;
    EXPECT_THROW(broadcast(ctx, &byte, 1, size()), std::invalid_argument);
    EXPECT_THROW(broadcast(ctx, &byte, 1, -1), std::invalid_argument);
  });
}

// ------------------------------------------------------------------ allgather

TEST_P(Collectives, AllgatherEveryCountSeparateAndInPlace) {
  for (size_t bytes : kCounts) {
    std::vector<uint8_t> expected;
    for (int rank = 0; rank < size(); ++rank) {
      const auto block = testing::pattern_bytes(bytes, static_cast<uint32_t>(rank + 1000 * bytes));
      expected.insert(expected.end(), block.begin(), block.end());
    }
    for (bool in_place : {false, true}) {
      const size_t total = bytes * static_cast<size_t>(size());
      std::vector<std::vector<uint8_t>> outputs(static_cast<size_t>(size()),
                                                std::vector<uint8_t>(total, 0xCD));
      on_every_rank([&](int rank, const CollectiveContext& ctx) {
        auto input = testing::pattern_bytes(bytes, static_cast<uint32_t>(rank + 1000 * bytes));
        uint8_t* output = outputs[static_cast<size_t>(rank)].data();
        uint8_t* own_block = output + static_cast<size_t>(rank) * bytes;
        if (in_place && bytes > 0) std::memcpy(own_block, input.data(), bytes);
        allgather(ctx, in_place ? own_block : input.data(), output, bytes);
      });
      for (int rank = 0; rank < size(); ++rank) {
        ASSERT_TRUE(outputs[static_cast<size_t>(rank)] == expected)
            << bytes << " bytes per rank, in place " << in_place << ", wrong on rank " << rank;
      }
    }
  }
}

// ------------------------------------------------------------------ reduce_scatter

TEST_P(Collectives, ReduceScatterEveryCount) {
  for (size_t count : kCounts) {
    // All blocks of all ranks at once: rank r's input is `size` blocks of `count` int32s.
    const ReductionCase c = make_reduction_case(
        DataType::kInt32, ReduceOp::kSum, count * static_cast<size_t>(size()), size(), count + 3);
    const size_t block_bytes = count * sizeof(int32_t);
    std::vector<std::vector<uint8_t>> outputs(static_cast<size_t>(size()),
                                              std::vector<uint8_t>(block_bytes, 0xEE));
    on_every_rank([&](int rank, const CollectiveContext& ctx) {
      reduce_scatter(ctx, c.inputs[static_cast<size_t>(rank)].data(),
                     outputs[static_cast<size_t>(rank)].data(), count, DataType::kInt32,
                     ReduceOp::kSum);
    });
    for (int rank = 0; rank < size(); ++rank) {
      const auto begin = c.expected.begin() + static_cast<std::ptrdiff_t>(rank * block_bytes);
      const std::vector<uint8_t> expected(begin, begin + static_cast<std::ptrdiff_t>(block_bytes));
      ASSERT_TRUE(outputs[static_cast<size_t>(rank)] == expected)
          << "count " << count << " wrong on rank " << rank;
    }
  }
}

TEST_P(Collectives, ReduceScatterNarrowFloatsAndBitwiseOps) {
  const size_t count = 1000;
  for (auto [dtype, op] : {std::pair{DataType::kBFloat16, ReduceOp::kMax},
                           std::pair{DataType::kFloat16, ReduceOp::kSum},
                           std::pair{DataType::kUInt8, ReduceOp::kBxor}}) {
    const ReductionCase c =
        make_reduction_case(dtype, op, count * static_cast<size_t>(size()), size(), 5);
    const size_t block_bytes = count * element_size(dtype);
    std::vector<std::vector<uint8_t>> outputs(static_cast<size_t>(size()),
                                              std::vector<uint8_t>(block_bytes));
    on_every_rank([&](int rank, const CollectiveContext& ctx) {
      reduce_scatter(ctx, c.inputs[static_cast<size_t>(rank)].data(),
                     outputs[static_cast<size_t>(rank)].data(), count, dtype, op);
    });
    for (int rank = 0; rank < size(); ++rank) {
      const auto begin = c.expected.begin() + static_cast<std::ptrdiff_t>(rank * block_bytes);
      const std::vector<uint8_t> expected(begin, begin + static_cast<std::ptrdiff_t>(block_bytes));
      ASSERT_TRUE(equal_values(dtype, outputs[static_cast<size_t>(rank)], expected))
          << dtype_name(dtype) << " " << reduce_op_name(op) << " on rank " << rank;
    }
  }
}

// ------------------------------------------------------------------ barrier

TEST_P(Collectives, BarrierReturnsOnlyOnceEveryRankEntered) {
  for (int round = 0; round < 4; ++round) {
    std::atomic<int> entered{0};
    on_every_rank([&](int rank, const CollectiveContext& ctx) {
      // Late arrivals: the last rank enters well after the others.
      std::this_thread::sleep_for(std::chrono::milliseconds(rank == size() - 1 ? 30 : rank));
      entered.fetch_add(1);
      barrier(ctx);
      EXPECT_EQ(entered.load(), size()) << "rank " << rank << " left the barrier early";
    });
  }
}

// ------------------------------------------------------------------ failures

TEST_P(Collectives, DeadlineExpiryReportsTimeoutWhenOneRankIsAbsent) {
  if (size() < 2) GTEST_SKIP() << "needs a missing peer";
  for (size_t count : {size_t{1000}, size_t{1} << 20}) {
    on_every_rank(
        [&](int rank, const CollectiveContext& ctx) {
          if (rank == 0) return;  // never joins
          std::vector<float> data(count, 1.0f);
          const auto start = Clock::now();
          try {
            allreduce(ctx, data.data(), count, DataType::kFloat32, ReduceOp::kSum);
            ADD_FAILURE() << "rank " << rank << ": allreduce succeeded without rank 0";
          } catch (const transport::TransportError& error) {
            EXPECT_EQ(error.kind(), transport::ErrorKind::kTimeout) << error.what();
            EXPECT_NE(std::string(error.what()).find("allreduce"), std::string::npos)
                << error.what();
            EXPECT_GE(error.peer(), 0) << error.what();
            if (rank == 1) std::printf("  rank 1: %s\n", error.what());
          }
          EXPECT_LT(Clock::now() - start, 10s);
        },
        300ms);
  }
}

// A rank whose transport was aborted fails at once with kAborted; the others fail within the
// deadline (peer lost, aborted or timed out, depending on what the transport notices first). Every
// error names the collective.
TEST_P(Collectives, AbortedRankFailsEveryRankWithContext) {
  if (size() != 3) GTEST_SKIP() << "run at 3 ranks only";
  std::vector<std::string> messages(static_cast<size_t>(size()));
  transports()[0]->abort("test aborts rank 0");
  on_every_rank(
      [&](int rank, const CollectiveContext& ctx) {
        std::vector<float> data(size_t{1} << 18, 1.0f);
        try {
          allreduce(ctx, data.data(), data.size(), DataType::kFloat32, ReduceOp::kSum);
          ADD_FAILURE() << "rank " << rank << ": allreduce succeeded";
        } catch (const transport::TransportError& error) {
          messages[static_cast<size_t>(rank)] = error.what();
          if (rank == 0) {
            EXPECT_EQ(error.kind(), transport::ErrorKind::kAborted) << error.what();
          }
          EXPECT_NE(std::string(error.what()).find("allreduce"), std::string::npos);
        }
      },
      1000ms);
  for (const auto& message : messages) std::printf("  %s\n", message.c_str());
}

INSTANTIATE_TEST_SUITE_P(Engine, Collectives, every_kind_and_size(), kind_and_size_name);

}  // namespace
}  // namespace torchwan::engine
