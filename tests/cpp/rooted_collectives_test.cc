// reduce, gather, scatter and alltoallv over the memory, UCX and ZeroMQ transports for world
// sizes 1..5, against references computed here from each rank's inputs.
#include <gtest/gtest.h>

#include <chrono>
#include <cstring>
#include <functional>
#include <stdexcept>
#include <string>
#include <vector>

#include "csrc/collectives.h"
#include "reduction_cases.h"
#include "test_support.h"

namespace torchwan::engine {
namespace {

using namespace test_data;
using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;

// Below and above the tree/chain switch of reduce (4 MiB of float32).
constexpr size_t kReduceCounts[] = {0, 1, 7, 1000, (size_t{1} << 20) + 3};
constexpr size_t kBlockBytes[] = {0, 1, 13, 4096, (size_t{3} << 20) + 1};

class RootedCollectives : public KindAndSizeTest {
 public:
  // Runs body(rank, ctx) on every rank, all with the same fresh sequence number.
  void on_every_rank(const std::function<void(int, const CollectiveContext&)>& body,
                     std::chrono::milliseconds timeout = 60s) {
    if (ranks_.empty()) ranks_ = make_group(kind(), size());
    const uint32_t seq = next_seq_++;
    const auto deadline = Clock::now() + timeout;
    testing::run_on_threads(size(), [&](int rank) {
      const CollectiveContext ctx{*ranks_[static_cast<size_t>(rank)], seq, deadline};
      body(rank, ctx);
    });
  }

  // Large cases at the first and last root only: the algorithms' shape does not depend on the
  // root, and the large cases dominate the run time.
  bool worth_running(size_t bytes, int root) const {
    return bytes < (size_t{1} << 20) || root == 0 || root == size() - 1;
  }

  void check_reduce(DataType dtype, ReduceOp op, size_t count, int root, uint64_t seed) {
    const ReductionCase c = make_reduction_case(dtype, op, count, size(), seed);
    std::vector<std::vector<uint8_t>> data = c.inputs;
    on_every_rank([&](int rank, const CollectiveContext& ctx) {
      reduce(ctx, data[static_cast<size_t>(rank)].data(), count, dtype, op, root);
    });
    for (int rank = 0; rank < size(); ++rank) {
      const auto& actual = data[static_cast<size_t>(rank)];
      if (rank == root) {
        EXPECT_TRUE(equal_values(dtype, actual, c.expected))
            << dtype_name(dtype) << " " << reduce_op_name(op) << " x " << count << " root " << root;
      } else {
        EXPECT_EQ(actual, c.inputs[static_cast<size_t>(rank)])
            << "rank " << rank << "'s buffer changed (root " << root << ", count " << count << ")";
      }
    }
  }

 private:
  std::vector<std::unique_ptr<transport::Transport>> ranks_;
  uint32_t next_seq_ = 1;
};

// Rank `rank`'s block for `peer`: distinct bytes for every (rank, peer) pair.
std::vector<uint8_t> block_of(int rank, int peer, size_t bytes) {
  return testing::pattern_bytes(bytes, static_cast<uint32_t>(rank * 1000 + peer));
}

// ------------------------------------------------------------------ reduce

TEST_P(RootedCollectives, ReduceFloat32SumEveryCountAndRoot) {
  for (size_t count : kReduceCounts) {
    for (int root = 0; root < size(); ++root) {
      if (!worth_running(count * 4, root)) continue;
      check_reduce(DataType::kFloat32, ReduceOp::kSum, count, root, count + 17 * root);
    }
  }
}

TEST_P(RootedCollectives, ReduceEveryDtypeAndOp) {
  const int root = size() / 2;
  for (DataType dtype : kAllTypes) {
    for (ReduceOp op : kAllOps) {
      if (!reduce_supported(dtype, op)) continue;
      check_reduce(dtype, op, 33, root, static_cast<uint64_t>(dtype) * 10 + static_cast<int>(op));
    }
  }
}

TEST_P(RootedCollectives, ReduceLargeIntegersWithTheChain) {
  // Exact integer products and bitwise ops through the chunked chain, at a non-zero root.
  const size_t count = (size_t{1} << 20) + 5;  // just over the chain threshold in int32
  check_reduce(DataType::kInt32, ReduceOp::kBxor, count, size() - 1, 5);
  check_reduce(DataType::kInt64, ReduceOp::kMin, count / 2 + 1, 0, 6);
}

TEST_P(RootedCollectives, RejectBadArgumentsOnEveryRank) {
  float value = 1.0f;
  on_every_rank([&](int, const CollectiveContext& ctx) {
    EXPECT_THROW(reduce(ctx, &value, 1, DataType::kFloat32, ReduceOp::kSum, size()),
                 std::invalid_argument);
    EXPECT_THROW(reduce(ctx, &value, 1, DataType::kComplex64, ReduceOp::kMax, 0),
                 std::invalid_argument);
    EXPECT_THROW(gather(ctx, &value, &value, 4, -1), std::invalid_argument);
    EXPECT_THROW(scatter(ctx, &value, &value, 4, size()), std::invalid_argument);
  });
}

// ------------------------------------------------------------------ gather / scatter

TEST_P(RootedCollectives, GatherEveryCountAndRoot) {
  for (size_t bytes : kBlockBytes) {
    for (int root = 0; root < size(); ++root) {
      if (!worth_running(bytes, root)) continue;
      std::vector<std::vector<uint8_t>> outputs(static_cast<size_t>(size()));
      outputs[static_cast<size_t>(root)].assign(bytes * static_cast<size_t>(size()), 0xEE);
      on_every_rank([&](int rank, const CollectiveContext& ctx) {
        const std::vector<uint8_t> input = block_of(rank, root, bytes);
        // Non-roots pass no output buffer at all.
        gather(ctx, input.data(),
               rank == root ? outputs[static_cast<size_t>(rank)].data() : nullptr, bytes, root);
      });
      std::vector<uint8_t> expected;
      for (int rank = 0; rank < size(); ++rank) {
        const auto block = block_of(rank, root, bytes);
        expected.insert(expected.end(), block.begin(), block.end());
      }
      EXPECT_EQ(outputs[static_cast<size_t>(root)], expected) << bytes << " bytes, root " << root;
    }
  }
}

TEST_P(RootedCollectives, GatherInPlaceAtTheRoot) {
  const size_t bytes = 1000;
  const int root = size() - 1;
  std::vector<uint8_t> output(bytes * static_cast<size_t>(size()));
  const auto own = block_of(root, root, bytes);
  std::memcpy(output.data() + static_cast<size_t>(root) * bytes, own.data(), bytes);
  on_every_rank([&](int rank, const CollectiveContext& ctx) {
    if (rank == root) {
      gather(ctx, output.data() + static_cast<size_t>(root) * bytes, output.data(), bytes, root);
    } else {
      const auto input = block_of(rank, root, bytes);
      gather(ctx, input.data(), nullptr, bytes, root);
    }
  });
  for (int rank = 0; rank < size(); ++rank) {
    EXPECT_EQ(0, std::memcmp(output.data() + static_cast<size_t>(rank) * bytes,
                             block_of(rank, root, bytes).data(), bytes))
        << "block " << rank;
  }
}

TEST_P(RootedCollectives, ScatterEveryCountAndRoot) {
  for (size_t bytes : kBlockBytes) {
    for (int root = 0; root < size(); ++root) {
      if (!worth_running(bytes, root)) continue;
      std::vector<uint8_t> input;
      for (int rank = 0; rank < size(); ++rank) {
        const auto block = block_of(root, rank, bytes);
        input.insert(input.end(), block.begin(), block.end());
      }
      std::vector<std::vector<uint8_t>> outputs(static_cast<size_t>(size()),
                                                std::vector<uint8_t>(bytes, 0xEE));
      on_every_rank([&](int rank, const CollectiveContext& ctx) {
        // Non-roots pass no input buffer at all.
        scatter(ctx, rank == root ? input.data() : nullptr,
                outputs[static_cast<size_t>(rank)].data(), bytes, root);
      });
      for (int rank = 0; rank < size(); ++rank) {
        EXPECT_EQ(outputs[static_cast<size_t>(rank)], block_of(root, rank, bytes))
            << bytes << " bytes, root " << root << ", rank " << rank;
      }
    }
  }
}

// ------------------------------------------------------------------ alltoallv

// What rank `from` sends rank `to`: uneven, with empty blocks (including some self-blocks).
size_t pair_bytes(int from, int to, size_t scale) {
  return static_cast<size_t>((from * 7 + to * 3) % 5) * scale;
}

void check_alltoallv(RootedCollectives& test, size_t scale) {
  const int size = test.size();
  std::vector<std::vector<uint8_t>> outputs(static_cast<size_t>(size));
  std::vector<std::vector<size_t>> recv_offsets(static_cast<size_t>(size));
  test.on_every_rank([&](int rank, const CollectiveContext& ctx) {
    // Blocks laid out in reverse peer order with gaps, so offsets really are used.
    std::vector<size_t> send_offsets(static_cast<size_t>(size));
    std::vector<size_t> send_bytes(static_cast<size_t>(size));
    std::vector<size_t> recv_bytes(static_cast<size_t>(size));
    auto& my_recv_offsets = recv_offsets[static_cast<size_t>(rank)];
    my_recv_offsets.assign(static_cast<size_t>(size), 0);
    std::vector<uint8_t> input;
    size_t out_end = 0;
    for (int peer = size - 1; peer >= 0; --peer) {
      const auto index = static_cast<size_t>(peer);
      send_bytes[index] = pair_bytes(rank, peer, scale);
      send_offsets[index] = input.size() + 3;
      input.resize(send_offsets[index]);
      const auto block = block_of(rank, peer, send_bytes[index]);
      input.insert(input.end(), block.begin(), block.end());
      recv_bytes[index] = pair_bytes(peer, rank, scale);
      my_recv_offsets[index] = out_end + 5;
      out_end = my_recv_offsets[index] + recv_bytes[index];
    }
    auto& output = outputs[static_cast<size_t>(rank)];
    output.assign(out_end, 0xEE);
    alltoallv(ctx, input.data(), send_offsets, send_bytes, output.data(), my_recv_offsets,
              recv_bytes);
  });
  for (int rank = 0; rank < size; ++rank) {
    for (int peer = 0; peer < size; ++peer) {
      const size_t bytes = pair_bytes(peer, rank, scale);
      const auto expected = block_of(peer, rank, bytes);
      const size_t offset = recv_offsets[static_cast<size_t>(rank)][static_cast<size_t>(peer)];
      if (bytes == 0) continue;  // an empty block has no data() to compare
      ASSERT_EQ(0, std::memcmp(outputs[static_cast<size_t>(rank)].data() + offset, expected.data(),
                               bytes))
          << "rank " << rank << " block from " << peer << " (" << bytes << " bytes)";
    }
  }
}

TEST_P(RootedCollectives, AlltoallvUnevenWithEmptyBlocks) { check_alltoallv(*this, 11); }

TEST_P(RootedCollectives, AlltoallvLargeBlocks) { check_alltoallv(*this, (size_t{1} << 18) + 1); }

TEST_P(RootedCollectives, AlltoallvAllEmptyWithNullBuffers) {
  on_every_rank([&](int, const CollectiveContext& ctx) {
    const std::vector<size_t> zeros(static_cast<size_t>(size()), 0);
    alltoallv(ctx, nullptr, zeros, zeros, nullptr, zeros, zeros);
  });
}

TEST_P(RootedCollectives, AlltoallvRejectsWrongSpanLengths) {
  on_every_rank([&](int, const CollectiveContext& ctx) {
    const std::vector<size_t> short_list(static_cast<size_t>(size()) - 1, 0);
    const std::vector<size_t> zeros(static_cast<size_t>(size()), 0);
    uint8_t byte = 0;
    EXPECT_THROW(alltoallv(ctx, &byte, short_list, zeros, &byte, zeros, zeros),
                 std::invalid_argument);
  });
}

TEST_P(RootedCollectives, AlltoallvSizeDisagreementFailsNamingThePeer) {
  if (size() < 2) GTEST_SKIP() << "needs a peer";
  // Only rank 0 sees the disagreement; the others may wait for what it canceled until the
  // deadline (the signature check, tested elsewhere, is what fails every rank).
  std::vector<std::string> errors(static_cast<size_t>(size()));
  on_every_rank(
      [&](int rank, const CollectiveContext& ctx) {
        std::vector<size_t> offsets(static_cast<size_t>(size()), 0);
        std::vector<size_t> sizes(static_cast<size_t>(size()), 8);
        std::vector<size_t> expected = sizes;
        if (rank == 0) expected[1] = 9;  // rank 1 sends 8
        std::vector<uint8_t> input(8), output(9);
        try {
          alltoallv(ctx, input.data(), offsets, sizes, output.data(), offsets, expected);
        } catch (const transport::TransportError& error) {
          errors[static_cast<size_t>(rank)] = error.what();
          if (rank == 0) {
            EXPECT_EQ(error.kind(), transport::ErrorKind::kSizeMismatch) << error.what();
          }
        }
      },
      2s);
  EXPECT_NE(errors[0].find("peer 1"), std::string::npos) << errors[0];
}

INSTANTIATE_TEST_SUITE_P(Engine, RootedCollectives, every_kind_and_size(), kind_and_size_name);

}  // namespace
}  // namespace torchwan::engine
