// The backend's compressed allreduce over the in-process memory transport: every rank gets the
// same bits, the error stays within two quantisations of each codec block, the bytes sent match
// the codec's ratio, and the option parser accepts exactly the stateless codecs.
#include "csrc/compressed_allreduce.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstring>
#include <memory>
#include <random>
#include <span>
#include <stdexcept>
#include <string>
#include <vector>

#include "csrc/codec_steps.h"
#include "csrc/compression/codec.h"
#include "csrc/compression/codec_table.h"
#include "csrc/host_shared_memory.h"
#include "csrc/ring.h"
#include "csrc/scratch_pool.h"
#include "csrc/topology.h"
#include "memory_transport.h"
#include "reduction_cases.h"
#include "test_support.h"

namespace torchwan::engine {
namespace {

using compression::Codec;
using compression::CodecConfig;
using namespace std::chrono_literals;

constexpr size_t kBlock = 256;

std::vector<std::vector<float>> random_inputs(int size, size_t count, uint32_t seed) {
  std::mt19937 generator(seed);
  std::normal_distribution<float> normal(0.0f, 1.0f);
  std::vector<std::vector<float>> inputs(static_cast<size_t>(size), std::vector<float>(count));
  for (auto& input : inputs) {
    // Blocks of very different magnitudes: the bound is relative to each block's absmax.
    for (size_t i = 0; i < count; ++i) input[i] = normal(generator) * (1.0f + float(i % 977));
  }
  return inputs;
}

// Per-element error allowed for one quantisation of a block whose largest magnitude is `absmax`.
double stage_bound(Codec codec, double absmax) {
  switch (codec) {
    case Codec::kInt8Block:
      return absmax / 254.0 + std::ldexp(absmax, -21);
    case Codec::kFloat8Block:
      return std::ldexp(absmax, -4) + std::ldexp(absmax, -21);
    case Codec::kBFloat16:
      return std::ldexp(absmax, -8);
    case Codec::kFloat16:
      return std::ldexp(absmax, -11);
    default:
      return 0;
  }
}

void run(Codec codec, int size, size_t count, size_t piece_elements = 0) {
  const CodecConfig config{.codec = codec};
  const auto inputs = random_inputs(size, count, 17 + static_cast<uint32_t>(count));
  auto outputs = inputs;
  auto ranks = testing::connect_memory_ranks(size);
  const auto deadline = std::chrono::steady_clock::now() + 60s;
  testing::run_on_threads(size, [&](int rank) {
    const auto index = static_cast<size_t>(rank);
    const CollectiveContext ctx{*ranks[index], 1, deadline};
    compressed_allreduce(ctx, outputs[index].data(), count, config, piece_elements);
  });
  for (size_t rank = 1; rank < outputs.size() && count > 0; ++rank) {
    ASSERT_EQ(0, std::memcmp(outputs[rank].data(), outputs[0].data(), count * sizeof(float)))
        << "rank " << rank << " differs from rank 0";
  }
  if (size == 1) {
    EXPECT_EQ(outputs[0], inputs[0]);  // nothing to reduce: exact
    return;
  }
  for (size_t start = 0; start < count; start += kBlock) {
    const size_t end = std::min(count, start + kBlock);
    std::vector<double> exact(end - start, 0.0);
    double bound = 0;
    for (const auto& input : inputs) {
      double absmax = 0;
      for (size_t i = start; i < end; ++i) {
        exact[i - start] += input[i];
        absmax = std::max(absmax, std::fabs(double(input[i])));
      }
      bound += stage_bound(codec, absmax);
    }
    double sum_absmax = 0;
    for (double value : exact) sum_absmax = std::max(sum_absmax, std::fabs(value));
    bound += stage_bound(codec, sum_absmax) + 1e-6 * sum_absmax;  // + fp32 summation rounding
    for (size_t i = start; i < end; ++i) {
      ASSERT_LE(std::fabs(outputs[0][i] - exact[i - start]), bound)
          << compression::codec_name(codec) << " size " << size << " element " << i;
    }
  }
}

TEST(CompressedAllreduce, WithinTwoQuantisationsAndBitIdentical) {
  for (Codec codec : {Codec::kInt8Block, Codec::kFloat8Block, Codec::kBFloat16, Codec::kFloat16}) {
    for (int size : {1, 2, 3, 4, 5}) {
      // Shards of whole blocks leave the last ranks short or empty for the small counts.
      for (size_t count : {size_t{0}, size_t{1}, size_t{300}, size_t{70001}}) {
        run(codec, size, count);
      }
    }
  }
}

// Small pieces: many of them in flight in both phases, short last pieces, shards with fewer
// pieces than others. The result must not depend on the piece size at all.
TEST(CompressedAllreduce, PiecesOverlapWithoutChangingTheResult) {
  for (int size : {2, 3, 4}) {
    for (size_t piece : {size_t{256}, size_t{700}}) run(Codec::kInt8Block, size, 70001, piece);
  }
  const CodecConfig config{.codec = Codec::kFloat8Block};
  const int size = 3;
  const size_t count = 50000;
  const auto inputs = random_inputs(size, count, 5);
  std::vector<std::vector<float>> results;
  for (size_t piece : {size_t{0}, size_t{256}, size_t{1000}}) {
    auto outputs = inputs;
    auto ranks = testing::connect_memory_ranks(size);
    const auto deadline = std::chrono::steady_clock::now() + 60s;
    testing::run_on_threads(size, [&](int rank) {
      const auto index = static_cast<size_t>(rank);
      compressed_allreduce({*ranks[index], 1, deadline}, outputs[index].data(), count, config,
                           piece);
    });
    results.push_back(outputs[1]);
  }
  EXPECT_EQ(0, std::memcmp(results[1].data(), results[0].data(), count * sizeof(float)));
  EXPECT_EQ(0, std::memcmp(results[2].data(), results[0].data(), count * sizeof(float)));
}

// The second call of a group takes its scratch from what the first left in the pool; memory that
// still holds the last call's payloads must not change the result.
TEST(CompressedAllreduce, RepeatedCallsReuseTheirScratchWithTheSameResult) {
  const CodecConfig config{.codec = Codec::kInt8Block};
  const int size = 4;
  const size_t count = size_t{6} << 20;  // every scratch buffer is big enough to be pooled
  const auto inputs = random_inputs(size, count, 9);
  auto ranks = testing::connect_memory_ranks(size);
  std::vector<std::unique_ptr<ScratchPool>> pools;
  for (int rank = 0; rank < size; ++rank) {
    pools.push_back(std::make_unique<ScratchPool>(ScratchPool::kDefaultMaxCachedBytes));
  }
  std::vector<std::vector<std::vector<float>>> results;
  for (uint32_t seq : {1u, 2u}) {
    auto outputs = inputs;
    const auto deadline = std::chrono::steady_clock::now() + 60s;
    testing::run_on_threads(size, [&](int rank) {
      const auto index = static_cast<size_t>(rank);
      const CollectiveContext ctx{*ranks[index], seq,     deadline,
                                  nullptr,       nullptr, pools[index].get()};
      compressed_allreduce(ctx, outputs[index].data(), count, config);
    });
    results.push_back(std::move(outputs));
  }
  for (size_t rank = 0; rank < pools.size(); ++rank) {
    // Outgoing and gathered payloads, the incoming contributions and the fp32 sum.
    EXPECT_EQ(pools[rank]->reuses(), 4u) << "rank " << rank;
    EXPECT_EQ(0,
              std::memcmp(results[1][rank].data(), results[0][rank].data(), count * sizeof(float)))
        << "rank " << rank;
  }
}

// Pieces are as large as they can be while their payloads stay below the striping threshold, so
// each travels whole on one lane. Blocked codecs cut them at whole blocks, the casts anywhere.
TEST(CompressedAllreduce, PiecesStayBelowTheStripingThreshold) {
  for (Codec codec : {Codec::kInt8Block, Codec::kFloat8Block, Codec::kBFloat16, Codec::kFloat16}) {
    const CodecConfig config{.codec = codec};
    const size_t unit = compression::describe(codec).granularity(config);
    EXPECT_EQ(unit, codec == Codec::kInt8Block || codec == Codec::kFloat8Block ? kBlock : 1u);
    for (size_t threshold : {size_t{1} << 20, size_t{300000}, size_t{64} << 10}) {
      const size_t elements = compressed_piece_elements(config, threshold);
      EXPECT_EQ(elements % unit, 0u);
      EXPECT_LT(compression::encoded_size(config, elements), threshold);
      EXPECT_GE(compression::encoded_size(config, elements + unit), threshold);
    }
    // A high threshold leaves the largest piece; a tiny one still gives one unit.
    EXPECT_EQ(compressed_piece_elements(config, size_t{1} << 30), kCompressedPieceElements);
    EXPECT_EQ(compressed_piece_elements(config, 16), unit);
  }
}

// Caller-owned residuals: over many calls, what the results delivered plus what every rank's
// residuals still owe equals the exact sum of the inputs, for every codec (sign and top-k work only
// this way), and every rank gets the same bits at every step.
TEST(CompressedAllreduce, ErrorFeedbackLosesNothingOverCalls) {
  constexpr int kSize = 3;
  constexpr size_t kCount = 5000;
  constexpr int kSteps = 12;
  for (Codec codec : {Codec::kSignBlock, Codec::kTopK, Codec::kInt8Block, Codec::kFloat16}) {
    const CodecConfig config{.codec = codec, .topk_fraction = 0.1};
    std::vector<std::vector<float>> contribution(kSize, std::vector<float>(kCount, 0.0f));
    std::vector<std::vector<float>> reduction(kSize, std::vector<float>(kCount, 0.0f));
    std::vector<double> fed(kCount, 0.0);
    std::vector<double> fed_magnitude(kCount, 0.0);  // float roundings scale with it
    std::vector<double> delivered(kCount, 0.0);
    std::vector<double> delivered_magnitude(kCount, 0.0);
    auto ranks = testing::connect_memory_ranks(kSize);
    for (int step = 0; step < kSteps; ++step) {
      auto outputs = random_inputs(kSize, kCount, 100 + static_cast<uint32_t>(step));
      for (const auto& input : outputs) {
        for (size_t i = 0; i < kCount; ++i) {
          fed[i] += input[i];
          fed_magnitude[i] += std::fabs(input[i]);
        }
      }
      const auto deadline = std::chrono::steady_clock::now() + 60s;
      testing::run_on_threads(kSize, [&](int rank) {
        const auto index = static_cast<size_t>(rank);
        const ErrorFeedback feedback{contribution[index], reduction[index]};
        const CollectiveContext ctx{*ranks[index], static_cast<uint32_t>(step + 1), deadline};
        compressed_allreduce(ctx, outputs[index].data(), kCount, config, 700, &feedback);
      });
      for (size_t rank = 1; rank < kSize; ++rank) {
        ASSERT_EQ(0, std::memcmp(outputs[rank].data(), outputs[0].data(), kCount * sizeof(float)))
            << compression::codec_name(codec) << " step " << step << " rank " << rank;
      }
      for (size_t i = 0; i < kCount; ++i) {
        delivered[i] += outputs[0][i];
        delivered_magnitude[i] += std::fabs(outputs[0][i]);
      }
    }
    for (size_t i = 0; i < kCount; ++i) {
      double owed = 0;
      double owed_magnitude = 0;
      for (size_t rank = 0; rank < kSize; ++rank) {
        owed += contribution[rank][i] + reduction[rank][i];
        owed_magnitude += std::fabs(contribution[rank][i]) + std::fabs(reduction[rank][i]);
      }
      // Each float addition rounds by 2^-24 of what it adds (for the block codecs, values as large
      // as the block's); a lost residual would be a whole quantisation error, far above this.
      const double tolerance =
          2e-6 * (fed_magnitude[i] + delivered_magnitude[i] + owed_magnitude) + 1e-6;
      ASSERT_NEAR(delivered[i] + owed, fed[i], tolerance)
          << compression::codec_name(codec) << " element " << i;
    }
  }
}

// Steps as the CUDA ones sum: each contribution's piece whole, never in tiles. The sum adds the
// same values in the same rank order per element, so the bits (results and residuals) must equal
// the host steps', and every encode and decode must go through the steps.
class WholePieceSteps final : public CodecSteps {
 public:
  size_t encodes = 0;
  size_t decodes = 0;

  float* sum_memory(Exchange& ex, size_t count) override { return host_.sum_memory(ex, count); }
  size_t tile_elements(const CodecConfig& /*config*/, size_t piece_elements) const override {
    return piece_elements;
  }
  void encode(const CodecConfig& config, const float* input, float* residual, size_t count,
              std::span<uint8_t> payload) override {
    ++encodes;
    host_.encode(config, input, residual, count, payload);
  }
  void zero(float* values, size_t count) override { host_.zero(values, count); }
  void add(float* sum, const float* values, size_t count) override {
    host_.add(sum, values, count);
  }
  void decode_accumulate(std::span<const uint8_t> payload, size_t first, float* sum,
                         size_t count) override {
    EXPECT_EQ(first, 0u);
    ++decodes;
    compression::decode_accumulate(payload, std::span<float>(sum, count));
  }
  void decode(std::span<const uint8_t> payload, float* output, size_t count) override {
    ++decodes;
    host_.decode(payload, output, count);
  }
  void reset_if_not_finite(const float* data, size_t count,
                           const ErrorFeedback& feedback) override {
    host_.reset_if_not_finite(data, count, feedback);
  }

 private:
  HostCodecSteps host_;
};

TEST(CompressedAllreduce, StepsThatSumWholePiecesGiveTheSameBits) {
  constexpr int kSize = 3;
  constexpr size_t kCount = 70001;
  for (Codec codec : {Codec::kInt8Block, Codec::kSignBlock, Codec::kTopK}) {
    const CodecConfig config{.codec = codec,
                             .topk_fraction = 0.1,
                             .stochastic_rounding = codec == Codec::kInt8Block,
                             .seed = 9};
    std::vector<std::vector<std::vector<float>>> results;    // [steps kind][rank]
    std::vector<std::vector<std::vector<float>>> residuals;  // [steps kind][rank]
    for (const bool custom : {false, true}) {
      auto outputs = random_inputs(kSize, kCount, 23);
      std::vector<std::vector<float>> contribution(kSize, std::vector<float>(kCount, 0.0f));
      std::vector<std::vector<float>> reduction(kSize, std::vector<float>(kCount, 0.0f));
      std::vector<WholePieceSteps> steps(kSize);
      auto ranks = testing::connect_memory_ranks(kSize);
      const auto deadline = std::chrono::steady_clock::now() + 60s;
      testing::run_on_threads(kSize, [&](int rank) {
        const auto index = static_cast<size_t>(rank);
        const ErrorFeedback feedback{contribution[index], reduction[index]};
        compressed_allreduce({*ranks[index], 1, deadline}, outputs[index].data(), kCount, config,
                             20000, &feedback, custom ? &steps[index] : nullptr);
      });
      if (custom) {
        for (const WholePieceSteps& used : steps) {
          EXPECT_GT(used.encodes, 0u);
          EXPECT_GT(used.decodes, 0u);
        }
      }
      results.push_back(outputs);
      for (size_t rank = 0; rank < kSize; ++rank) {
        contribution[rank].insert(contribution[rank].end(), reduction[rank].begin(),
                                  reduction[rank].end());
      }
      residuals.push_back(contribution);
    }
    for (size_t rank = 0; rank < kSize; ++rank) {
      ASSERT_EQ(
          0, std::memcmp(results[1][rank].data(), results[0][rank].data(), kCount * sizeof(float)))
          << compression::codec_name(codec) << " rank " << rank;
      ASSERT_EQ(0, std::memcmp(residuals[1][rank].data(), residuals[0][rank].data(),
                               2 * kCount * sizeof(float)))
          << compression::codec_name(codec) << " residuals of rank " << rank;
    }
  }
}

TEST(CompressedAllreduce, ErrorFeedbackResidualsMustCoverTheBuffer) {
  auto ranks = testing::connect_memory_ranks(1);
  const CollectiveContext ctx{*ranks[0], 1, std::chrono::steady_clock::now() + 10s};
  std::vector<float> data(8, 1.0f);
  std::vector<float> short_residual(7, 0.0f);
  std::vector<float> residual(8, 0.0f);
  const ErrorFeedback feedback{short_residual, residual};
  EXPECT_THROW(compressed_allreduce(ctx, data.data(), data.size(), {.codec = Codec::kSignBlock}, 0,
                                    &feedback),
               std::invalid_argument);
}

TEST(CompressedAllreduce, RefusesCodecsThatNeedErrorFeedback) {
  auto ranks = testing::connect_memory_ranks(1);
  const CollectiveContext ctx{*ranks[0], 1, std::chrono::steady_clock::now() + 10s};
  float value = 1;
  EXPECT_THROW(compressed_allreduce(ctx, &value, 1, {.codec = Codec::kTopK}),
               std::invalid_argument);
}

TEST(CompressedAllreduce, BytesSentFollowTheCodecRatio) {
  const size_t count = size_t{1} << 22;  // 16 MiB of fp32
  const double ring = 2.0 * 3 / 4 * double(count) * 4;
  const double int8 =
      ring / double(compressed_allreduce_bytes_sent(count, 4, 0, {.codec = Codec::kInt8Block}));
  const double bf16 =
      ring / double(compressed_allreduce_bytes_sent(count, 4, 0, {.codec = Codec::kBFloat16}));
  EXPECT_GT(int8, 3.9);
  EXPECT_LT(int8, 4.0);
  EXPECT_GT(bf16, 1.99);
  EXPECT_LE(bf16, 2.0);
}

// Two hosts of two ranks over real sockets, with shared memory inside each host: every rank gets
// the same bits, within two quantisations of the hosts' exact partial sums, and the only bytes on
// the sockets are the compressed shards between the hosts (a flat compressed allreduce would send
// twice as many between them, and uncompressed ones inside them).
TEST(CompressedAllreduce, HostTierCompressesOnlyBetweenHosts) {
  constexpr int kSize = 4;
  const std::vector<int> host_of{0, 0, 1, 1};
  const size_t count = (size_t{3} << 20) + 77;
  const CodecConfig config{.codec = Codec::kInt8Block};
  Topology topology = topology_from_groups(std::vector<int>(kSize, 0));
  topology.host_of = host_of;
  auto ranks = test_data::make_group("ucx", kSize);
  std::vector<std::unique_ptr<HostSharedMemory>> memory;
  for (int rank = 0; rank < kSize; ++rank) memory.push_back(std::make_unique<HostSharedMemory>());
  const auto inputs = random_inputs(kSize, count, 5);
  auto outputs = inputs;
  std::vector<std::vector<transport::PeerTraffic>> before;
  for (const auto& rank : ranks) before.push_back(rank->traffic());
  const auto deadline = std::chrono::steady_clock::now() + 120s;
  testing::run_on_threads(kSize, [&](int rank) {
    const auto index = static_cast<size_t>(rank);
    const CollectiveContext ctx{.transport = *ranks[index],
                                .seq = 1,
                                .deadline = deadline,
                                .topology = &topology,
                                .host_memory = memory[index].get()};
    compressed_allreduce(ctx, outputs[index].data(), count, config);
  });
  for (size_t rank = 1; rank < kSize; ++rank) {
    ASSERT_EQ(0, std::memcmp(outputs[rank].data(), outputs[0].data(), count * sizeof(float)))
        << "rank " << rank << " differs from rank 0";
  }
  // Each host's exact partial sum is quantised once, the sum once more, in blocks that start at
  // the host's shard boundaries: any block holding element i lies within kBlock of it.
  std::vector<double> host_sum[2] = {std::vector<double>(count), std::vector<double>(count)};
  for (size_t rank = 0; rank < kSize; ++rank) {
    for (size_t i = 0; i < count; ++i) host_sum[host_of[rank]][i] += inputs[rank][i];
  }
  const auto window_absmax = [&](const std::vector<double>& values, size_t i) {
    double absmax = 0;
    for (size_t j = i < kBlock ? 0 : i - kBlock; j < std::min(count, i + kBlock); ++j) {
      absmax = std::max(absmax, std::fabs(values[j]));
    }
    return absmax;
  };
  std::vector<double> exact(count);
  for (size_t i = 0; i < count; ++i) exact[i] = host_sum[0][i] + host_sum[1][i];
  for (size_t i = 0; i < count; i += 997) {
    const double bound = stage_bound(config.codec, window_absmax(host_sum[0], i)) +
                         stage_bound(config.codec, window_absmax(host_sum[1], i)) +
                         stage_bound(config.codec, window_absmax(exact, i)) +
                         1e-6 * window_absmax(exact, i);
    ASSERT_LE(std::fabs(outputs[0][i] - exact[i]), bound) << "element " << i;
  }
  // Between the hosts: shard p (p = a rank's place on its host) is compressed-allreduced by the
  // two ranks holding it.
  uint64_t between = 0;
  uint64_t inside = 0;
  for (size_t rank = 0; rank < kSize; ++rank) {
    const std::vector<transport::PeerTraffic> after = ranks[rank]->traffic();
    for (size_t peer = 0; peer < kSize; ++peer) {
      const uint64_t sent = after[peer].bytes_sent - before[rank][peer].bytes_sent;
      (host_of[peer] == host_of[rank] ? inside : between) += sent;
    }
  }
  const RingLayout shards = balanced_ring_layout(count, sizeof(float), 2);
  uint64_t optimum = 0;
  for (size_t shard = 0; shard < 2; ++shard) {
    for (int rank = 0; rank < 2; ++rank) {
      optimum +=
          compressed_allreduce_bytes_sent(shards.length[shard] / sizeof(float), 2, rank, config);
    }
  }
  EXPECT_GE(between, optimum);
  EXPECT_LE(between, optimum + (uint64_t{64} << 10));
  EXPECT_LT(inside, uint64_t{64} << 10);
}

TEST(AllreduceCompressionPolicy, ParsesAndDecides) {
  EXPECT_FALSE(AllreduceCompression::parse("none").codec);
  EXPECT_FALSE(AllreduceCompression::parse("").codec);
  EXPECT_EQ(AllreduceCompression::parse("int8").codec, Codec::kInt8Block);
  EXPECT_EQ(AllreduceCompression::parse("fp8").codec, Codec::kFloat8Block);
  EXPECT_EQ(AllreduceCompression::parse("bf16").codec, Codec::kBFloat16);
  EXPECT_EQ(AllreduceCompression::parse("fp16").name(), "fp16");
  EXPECT_THROW(AllreduceCompression::parse("sign"), std::invalid_argument);
  EXPECT_THROW(AllreduceCompression::parse("int4"), std::invalid_argument);

  const auto int8 = AllreduceCompression::parse("int8");
  const size_t big = kCompressedAllreduceMinBytes;
  EXPECT_TRUE(int8.applies(DataType::kFloat32, ReduceOp::kSum, big));
  EXPECT_TRUE(int8.applies(DataType::kBFloat16, ReduceOp::kSum, big));
  EXPECT_TRUE(int8.applies(DataType::kFloat64, ReduceOp::kSum, big));
  EXPECT_FALSE(int8.applies(DataType::kFloat32, ReduceOp::kSum, big - 1));  // latency-bound
  EXPECT_FALSE(int8.applies(DataType::kFloat32, ReduceOp::kMax, big));
  EXPECT_FALSE(int8.applies(DataType::kInt32, ReduceOp::kSum, big));
  EXPECT_FALSE(int8.applies(DataType::kComplex64, ReduceOp::kSum, big));
  EXPECT_FALSE(AllreduceCompression{}.applies(DataType::kFloat32, ReduceOp::kSum, big));
}

}  // namespace
}  // namespace torchwan::engine
