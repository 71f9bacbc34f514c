// The call-signature check: the wire record (fixed length, validated, sanitised) and, over the
// memory, UCX and ZeroMQ transports, that ranks disagreeing on a call all fail fast with an error
// naming both sides, whether or not their data could still be exchanged.
#include "csrc/signature.h"

#include <gtest/gtest.h>

#include <chrono>
#include <cstring>
#include <functional>
#include <string>
#include <vector>

#include "csrc/collectives.h"
#include "reduction_cases.h"
#include "test_support.h"
#include "transport/errors.h"

namespace torchwan::engine {
namespace {

using namespace test_data;
using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;
using transport::ErrorKind;
using transport::TransportError;

// Caller-defined codes, as the c10d layer would pass them.
enum Kind : uint8_t { kAllreduce = 1, kBroadcast, kBarrier, kAlltoallv, kReduce, kGather };

CallSignature signature(Kind kind, uint8_t dtype, uint8_t op, int32_t root, uint64_t count,
                        std::string describe) {
  return CallSignature{kind, dtype, op, root, count, std::move(describe)};
}

CallSignature allreduce_signature(uint64_t count, const char* dtype = "float32",
                                  const char* op = "SUM") {
  const uint8_t dtype_code = std::string(dtype) == "float32" ? 8 : 4;
  const uint8_t op_code = std::string(op) == "SUM" ? 0 : 3;
  return signature(
      kAllreduce, dtype_code, op_code, -1, count,
      "allreduce(" + std::string(dtype) + " x " + std::to_string(count) + ", " + op + ")");
}

// ------------------------------------------------------------------ the wire record

TEST(SignatureRecord, RoundTripsEveryField) {
  WireSignature sent = wire_signature(signature(kReduce, 9, 2, 3, 1ull << 40, "reduce(x)"));
  sent.has_pair = true;
  sent.pair_send_bytes = 77;
  sent.pair_recv_bytes = 1ull << 33;
  const EncodedSignature encoded = encode_signature(sent);
  std::string why;
  const auto got = decode_signature(encoded.data(), encoded.size(), why);
  ASSERT_TRUE(got) << why;
  EXPECT_EQ(got->kind, kReduce);
  EXPECT_EQ(got->dtype, 9);
  EXPECT_EQ(got->op, 2);
  EXPECT_EQ(got->root, 3);
  EXPECT_EQ(got->count, 1ull << 40);
  EXPECT_TRUE(got->has_pair);
  EXPECT_EQ(got->pair_send_bytes, 77u);
  EXPECT_EQ(got->pair_recv_bytes, 1ull << 33);
  EXPECT_EQ(got->describe, "reduce(x)");
}

TEST(SignatureRecord, RejectsWhatIsNotARecordOfThisVersion) {
  const EncodedSignature good = encode_signature(wire_signature(allreduce_signature(5)));
  std::string why;
  EXPECT_FALSE(decode_signature(good.data(), good.size() - 1, why));
  EXPECT_NE(why.find("128"), std::string::npos) << why;

  EncodedSignature bad = good;
  bad[0] = 'X';
  EXPECT_FALSE(decode_signature(bad.data(), bad.size(), why));
  EXPECT_NE(why.find("magic"), std::string::npos) << why;

  bad = good;
  bad[4] = 99;
  EXPECT_FALSE(decode_signature(bad.data(), bad.size(), why));
  EXPECT_NE(why.find("version"), std::string::npos) << why;

  bad = good;
  bad[12] = 0x80;
  EXPECT_FALSE(decode_signature(bad.data(), bad.size(), why));

  bad = good;
  std::memset(bad.data() + 40, 'a', bad.size() - 40);  // no terminating NUL
  EXPECT_FALSE(decode_signature(bad.data(), bad.size(), why));
}

TEST(SignatureRecord, TextIsCutAndMadePrintable) {
  const std::string long_text(500, 'y');
  EXPECT_LT(wire_signature(signature(kBarrier, 0, 0, -1, 0, long_text)).describe.size(), 128u);
  EncodedSignature encoded = encode_signature(wire_signature(allreduce_signature(5)));
  encoded[41] = 0x1b;  // an escape character from a hostile peer
  encoded[42] = 0xff;
  std::string why;
  const auto got = decode_signature(encoded.data(), encoded.size(), why);
  ASSERT_TRUE(got) << why;
  EXPECT_EQ(got->describe.substr(0, 4), "a??r");
}

TEST(SignatureRecord, MismatchTextNamesBothSides) {
  const auto mine = wire_signature(allreduce_signature(1000));
  const auto theirs = wire_signature(allreduce_signature(999));
  EXPECT_EQ(signature_mismatch(mine, 0, theirs, 2),
            "rank 2 called allreduce(float32 x 999, SUM) but rank 0 called "
            "allreduce(float32 x 1000, SUM)");
  EXPECT_EQ(signature_mismatch(mine, 0, mine, 2), "");
  // Same text, different fields: the raw fields are named too.
  auto other_root = mine;
  other_root.root = 1;
  EXPECT_NE(signature_mismatch(mine, 0, other_root, 1).find("root 1"), std::string::npos);
}

// ------------------------------------------------------------------ across ranks

class SignatureCheck : public KindAndSizeTest {
 protected:
  // Runs body(rank, ctx) with signature_of(rank) on every rank.
  void on_every_rank(const std::function<CallSignature(int)>& signature_of,
                     const std::function<void(int, const CollectiveContext&)>& body,
                     std::chrono::milliseconds timeout = 30s) {
    if (ranks_.empty()) ranks_ = make_group(kind(), size());
    const uint32_t seq = next_seq_++;
    const auto deadline = Clock::now() + timeout;
    testing::run_on_threads(size(), [&](int rank) {
      const CallSignature mine = signature_of(rank);
      const CollectiveContext ctx{*ranks_[static_cast<size_t>(rank)], seq, deadline, &mine};
      body(rank, ctx);
    });
  }

  // Every rank must fail with kMismatch well before the 30 s deadline, its message containing
  // every string of `expected`.
  void expect_mismatch_everywhere(const std::function<CallSignature(int)>& signature_of,
                                  const std::function<void(int, const CollectiveContext&)>& body,
                                  const std::vector<std::string>& expected) {
    if (size() < 2) GTEST_SKIP() << "a single rank has no one to disagree with";
    std::vector<std::string> messages(static_cast<size_t>(size()));
    on_every_rank(signature_of, [&](int rank, const CollectiveContext& ctx) {
      const auto start = Clock::now();
      try {
        body(rank, ctx);
        ADD_FAILURE() << "rank " << rank << " returned normally";
      } catch (const TransportError& error) {
        messages[static_cast<size_t>(rank)] = error.what();
        EXPECT_EQ(error.kind(), ErrorKind::kMismatch) << "rank " << rank << ": " << error.what();
        for (const std::string& part : expected) {
          EXPECT_NE(std::string(error.what()).find(part), std::string::npos)
              << "rank " << rank << ": " << error.what();
        }
      }
      EXPECT_LT(Clock::now() - start, 8s) << "rank " << rank << " failed slowly";
    });
    std::printf("  rank 0: %s\n", messages[0].c_str());
  }

  std::vector<std::unique_ptr<transport::Transport>> ranks_;
  uint32_t next_seq_ = 1;
};

TEST_P(SignatureCheck, AgreeingCallsOfEveryCollectiveSucceed) {
  const int n = size();
  std::vector<float> data(1000, 1.0f);
  std::vector<float> gathered(1000 * static_cast<size_t>(n));
  const std::vector<size_t> offsets(static_cast<size_t>(n), 0);
  const std::vector<size_t> sizes(static_cast<size_t>(n), 0);
  auto same = [](CallSignature s) { return [s](int) { return s; }; };
  for (size_t count : {size_t{0}, size_t{1000}}) {
    on_every_rank(same(allreduce_signature(count)), [&](int, const CollectiveContext& ctx) {
      std::vector<float> mine(count, 1.0f);
      allreduce(ctx, mine.data(), count, DataType::kFloat32, ReduceOp::kSum);
      for (float value : mine) ASSERT_EQ(value, static_cast<float>(n));
    });
  }
  on_every_rank(same(signature(kBroadcast, 0, 0, 0, 4000, "broadcast")),
                [&](int, const CollectiveContext& ctx) {
                  std::vector<float> mine(1000, 2.0f);
                  broadcast(ctx, mine.data(), 4000, 0);
                });
  on_every_rank(same(signature(kBarrier, 0, 0, -1, 0, "barrier")),
                [&](int, const CollectiveContext& ctx) { barrier(ctx); });
  on_every_rank(same(signature(kGather, 8, 0, n - 1, 1000, "gather")),
                [&](int, const CollectiveContext& ctx) {
                  std::vector<float> out(1000 * static_cast<size_t>(n));
                  std::vector<float> in(1000, 3.0f);
                  gather(ctx, in.data(), out.data(), 4000, n - 1);
                  allgather(ctx, in.data(), out.data(), 0);  // no bytes: returns at once
                });
  on_every_rank(same(signature(kReduce, 8, 0, 0, 1000, "reduce")),
                [&](int, const CollectiveContext& ctx) {
                  std::vector<float> mine(1000, 1.0f);
                  reduce(ctx, mine.data(), 1000, DataType::kFloat32, ReduceOp::kSum, 0);
                });
  on_every_rank(same(signature(kAlltoallv, 0, 0, -1, 0, "alltoallv")),
                [&](int, const CollectiveContext& ctx) {
                  alltoallv(ctx, nullptr, offsets, sizes, nullptr, offsets, sizes);
                });
  on_every_rank(same(signature(kAllreduce, 8, 0, -1, 1000, "reduce_scatter")),
                [&](int, const CollectiveContext& ctx) {
                  std::vector<float> in(1000 * static_cast<size_t>(n), 1.0f);
                  std::vector<float> out(1000);
                  reduce_scatter(ctx, in.data(), out.data(), 1000, DataType::kFloat32,
                                 ReduceOp::kSum);
                  scatter(ctx, in.data(), out.data(), 0, 0);
                });
}

TEST_P(SignatureCheck, CountMismatchFailsEveryRankNamingBothSides) {
  const int odd = size() - 1;
  expect_mismatch_everywhere(
      [&](int rank) { return allreduce_signature(rank == odd ? 999 : 1000); },
      [&](int rank, const CollectiveContext& ctx) {
        std::vector<float> data(rank == odd ? 999 : 1000, 1.0f);
        allreduce(ctx, data.data(), data.size(), DataType::kFloat32, ReduceOp::kSum);
      },
      {"called allreduce(float32 x 999, SUM)", "called allreduce(float32 x 1000, SUM)",
       "rank " + std::to_string(odd)});
}

TEST_P(SignatureCheck, LargeCountMismatchInTheRingFailsEveryRank) {
  const int odd = size() / 2;
  const size_t count = (size_t{1} << 20) + 5;
  expect_mismatch_everywhere(
      [&](int rank) { return allreduce_signature(rank == odd ? count - 4 : count); },
      [&](int rank, const CollectiveContext& ctx) {
        std::vector<float> data(rank == odd ? count - 4 : count, 1.0f);
        allreduce(ctx, data.data(), data.size(), DataType::kFloat32, ReduceOp::kSum);
      },
      {"x " + std::to_string(count - 4), "x " + std::to_string(count)});
}

TEST_P(SignatureCheck, DtypeMismatchWithEqualBytesFailsEveryRank) {
  expect_mismatch_everywhere(
      [&](int rank) { return allreduce_signature(64, rank == 0 ? "int32" : "float32"); },
      [&](int rank, const CollectiveContext& ctx) {
        std::vector<float> data(64, 1.0f);
        allreduce(ctx, data.data(), 64, rank == 0 ? DataType::kInt32 : DataType::kFloat32,
                  ReduceOp::kSum);
      },
      {"allreduce(int32 x 64, SUM)", "allreduce(float32 x 64, SUM)"});
}

TEST_P(SignatureCheck, OpMismatchFailsEveryRank) {
  const int odd = size() - 1;
  expect_mismatch_everywhere(
      [&](int rank) { return allreduce_signature(10, "float32", rank == odd ? "MAX" : "SUM"); },
      [&](int rank, const CollectiveContext& ctx) {
        std::vector<float> data(10, 1.0f);
        allreduce(ctx, data.data(), 10, DataType::kFloat32,
                  rank == odd ? ReduceOp::kMax : ReduceOp::kSum);
      },
      {"allreduce(float32 x 10, MAX)", "allreduce(float32 x 10, SUM)"});
}

TEST_P(SignatureCheck, RootMismatchFailsEveryRank) {
  auto root_of = [](int rank) { return rank == 1 ? 1 : 0; };
  expect_mismatch_everywhere(
      [&](int rank) {
        return signature(kBroadcast, 0, 0, root_of(rank), 100,
                         "broadcast(100 bytes, root " + std::to_string(root_of(rank)) + ")");
      },
      [&](int rank, const CollectiveContext& ctx) {
        std::vector<uint8_t> data(100, 7);
        broadcast(ctx, data.data(), data.size(), root_of(rank));
      },
      {"broadcast(100 bytes, root 1)", "broadcast(100 bytes, root 0)"});
}

TEST_P(SignatureCheck, DifferentCollectivesFailEveryRank) {
  // Rank 0 enters a barrier while the others reduce to it: their messages never match.
  expect_mismatch_everywhere(
      [&](int rank) {
        return rank == 0 ? signature(kBarrier, 0, 0, -1, 0, "barrier()")
                         : signature(kReduce, 8, 0, 0, 1000, "reduce(float32 x 1000, SUM, root 0)");
      },
      [&](int rank, const CollectiveContext& ctx) {
        if (rank == 0) {
          barrier(ctx);
        } else {
          std::vector<float> data(1000, 1.0f);
          reduce(ctx, data.data(), data.size(), DataType::kFloat32, ReduceOp::kSum, 0);
        }
      },
      {"barrier()", "reduce(float32 x 1000, SUM, root 0)"});
}

TEST_P(SignatureCheck, ZeroCountOnOneRankStillFails) {
  expect_mismatch_everywhere([&](int rank) { return allreduce_signature(rank == 0 ? 0 : 8); },
                             [&](int rank, const CollectiveContext& ctx) {
                               std::vector<float> data(8, 1.0f);
                               allreduce(ctx, data.data(), rank == 0 ? 0 : 8, DataType::kFloat32,
                                         ReduceOp::kSum);
                             },
                             {"x 0,", "x 8,"});
}

TEST_P(SignatureCheck, AlltoallvPairDisagreementFailsBothRanksOfThePair) {
  if (size() < 2) GTEST_SKIP() << "needs a pair";
  std::vector<std::string> messages(static_cast<size_t>(size()));
  on_every_rank([](int) { return signature(kAlltoallv, 0, 0, -1, 0, "alltoallv(uint8)"); },
                [&](int rank, const CollectiveContext& ctx) {
                  const auto n = static_cast<size_t>(size());
                  std::vector<size_t> offsets(n);
                  std::vector<size_t> send(n, 4);
                  std::vector<size_t> recv(n, 4);
                  for (size_t i = 0; i < n; ++i) offsets[i] = 16 * i;
                  if (rank == 0) recv[1] = 6;  // rank 1 sends 4
                  std::vector<uint8_t> input(16 * n), output(16 * n);
                  try {
                    alltoallv(ctx, input.data(), offsets, send, output.data(), offsets, recv);
                  } catch (const TransportError& error) {
                    messages[static_cast<size_t>(rank)] = error.what();
                    if (rank < 2) {
                      EXPECT_EQ(error.kind(), ErrorKind::kMismatch) << error.what();
                    }
                  }
                },
                1500ms);
  EXPECT_NE(messages[0].find("expecting 6 bytes from rank 1"), std::string::npos) << messages[0];
  EXPECT_NE(
      messages[1].find("rank 0 called alltoallv(uint8) sending 4 bytes to rank 1 and expecting 6"),
      std::string::npos)
      << messages[1];
}

INSTANTIATE_TEST_SUITE_P(Engine, SignatureCheck, every_kind_and_size(), kind_and_size_name);

}  // namespace
}  // namespace torchwan::engine
