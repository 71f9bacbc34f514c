// Error feedback fused into encode: the payload is exactly encode(gradient + residual), and the new
// residual is exactly what decoding loses, for every codec.
#include <gtest/gtest.h>

#include <cmath>

#include "compression_test_util.h"
#include "csrc/compression/codec.h"

namespace torchwan::compression {
namespace {

using testing::bits;
using testing::decode_to_vector;
using testing::encode_to_vector;
using testing::gradient_like;

TEST(CompressionErrorFeedback, ResidualIsExactlyWhatDecodeLost) {
  const std::vector<float> gradient = gradient_like(50021, 21);
  std::vector<float> initial = gradient_like(50021, 22);
  for (float& value : initial) value *= 0.01f;
  for (const CodecConfig& config : testing::all_configs()) {
    std::vector<float> combined(gradient.size());
    for (size_t i = 0; i < gradient.size(); ++i) combined[i] = gradient[i] + initial[i];
    std::vector<float> residual = initial;
    std::vector<uint8_t> payload(encoded_size(config, gradient.size()));
    encode_with_error_feedback(config, gradient, residual, payload);
    // Fused equals unfused: the same bytes as encoding gradient + residual.
    ASSERT_EQ(payload, encode_to_vector(config, combined)) << codec_name(config.codec);
    const std::vector<float> decoded = decode_to_vector(payload);
    for (size_t i = 0; i < gradient.size(); ++i) {
      ASSERT_EQ(bits(residual[i]), bits(combined[i] - decoded[i]))
          << codec_name(config.codec) << " element " << i;
    }
  }
}

// Over many steps, what was sent plus what is still owed equals what was fed in (up to the
// float rounding of the running sums): nothing is lost for good.
TEST(CompressionErrorFeedback, NothingIsLostOverSteps) {
  constexpr size_t kCount = 4096;
  constexpr int kSteps = 50;
  for (Codec codec : {Codec::kInt8Block, Codec::kSignBlock, Codec::kTopK, Codec::kFloat8Block}) {
    CodecConfig config;
    config.codec = codec;
    config.topk_fraction = 0.05;
    std::vector<float> residual(kCount, 0.0f);
    std::vector<double> fed(kCount, 0.0);
    std::vector<double> sent(kCount, 0.0);
    std::vector<uint8_t> payload(encoded_size(config, kCount));
    for (int step = 0; step < kSteps; ++step) {
      const std::vector<float> gradient = gradient_like(kCount, 100 + step);
      for (size_t i = 0; i < kCount; ++i) fed[i] += gradient[i];
      encode_with_error_feedback(config, gradient, residual, payload);
      const std::vector<float> decoded = decode_to_vector(payload);
      for (size_t i = 0; i < kCount; ++i) sent[i] += decoded[i];
    }
    for (size_t i = 0; i < kCount; ++i) {
      const double tolerance = 1e-4 * (std::fabs(fed[i]) + std::fabs(sent[i]) + 1e-3);
      ASSERT_NEAR(sent[i] + residual[i], fed[i], tolerance) << codec_name(codec) << " " << i;
    }
  }
}

}  // namespace
}  // namespace torchwan::compression
