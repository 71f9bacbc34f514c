#include "csrc/codec_steps.h"

#include <algorithm>
#include <cmath>

#include "csrc/compressed_allreduce.h"
#include "csrc/compression/codec.h"
#include "csrc/compression/codec_table.h"
#include "csrc/exchange.h"

namespace torchwan::engine {

float* HostCodecSteps::sum_memory(Exchange& ex, size_t count) {
  return reinterpret_cast<float*>(ex.scratch(std::max<size_t>(count, 1) * sizeof(float)));
}

size_t HostCodecSteps::tile_elements(const compression::CodecConfig& config,
                                     size_t piece_elements) const {
  const compression::CodecDescriptor& codec = compression::describe(config.codec);
  // Codecs without range decoding sum each contribution's piece whole.
  if (!codec.range_decode) return std::max<size_t>(piece_elements, 1);
  const size_t block = codec.granularity(config);
  return (kReduceTileElements + block - 1) / block * block;
}

void HostCodecSteps::encode(const compression::CodecConfig& config, const float* input,
                            float* residual, size_t count, std::span<uint8_t> payload) {
  const std::span<const float> values(input, count);
  if (residual == nullptr) {
    compression::encode(config, values, payload);
  } else {
    compression::encode_with_error_feedback(config, values, std::span<float>(residual, count),
                                            payload);
  }
}

void HostCodecSteps::zero(float* values, size_t count) { std::fill_n(values, count, 0.0f); }

void HostCodecSteps::add(float* sum, const float* values, size_t count) {
  for (size_t i = 0; i < count; ++i) sum[i] += values[i];
}

void HostCodecSteps::decode_accumulate(std::span<const uint8_t> payload, size_t first, float* sum,
                                       size_t count) {
  const std::span<float> accumulator(sum, count);
  if (compression::describe(compression::inspect(payload).codec).range_decode) {
    compression::decode_accumulate_range(payload, first, accumulator);
  } else {
    compression::decode_accumulate(payload, accumulator);  // whole pieces: first is 0
  }
}

void HostCodecSteps::decode(std::span<const uint8_t> payload, float* output, size_t count) {
  compression::decode(payload, std::span<float>(output, count));
}

void HostCodecSteps::reset_if_not_finite(const float* data, size_t count,
                                         const ErrorFeedback& feedback) {
  if (std::all_of(data, data + count, [](float value) { return std::isfinite(value); })) return;
  std::fill(feedback.contribution.begin(), feedback.contribution.end(), 0.0f);
  std::fill(feedback.reduction.begin(), feedback.reduction.end(), 0.0f);
}

}  // namespace torchwan::engine
