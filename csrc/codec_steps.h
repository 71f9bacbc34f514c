// Where the fp32 data of a compressed allreduce lives, and the codec steps that touch it. The
// algorithm (shards, pieces, who sends what, the fp32 sum in rank order) is written once, in
// compressed_allreduce.cc; it calls these steps for everything that reads or writes the data.
// Payloads always sit in host memory from the Exchange's scratch, where the transport reads and
// writes them and whose lifetime outlasts every request of the call.
//
// HostCodecSteps runs the CPU codecs on host data. The c10d backend supplies steps for CUDA data
// (c10d_backend/cuda_codec_steps.h): the CUDA kernels encode and decode on the GPU, and only the
// payloads cross PCIe. Both write identical bytes and add in the same order, so the two give the
// same bits.
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>

#include "csrc/compression/codec_types.h"

namespace torchwan::engine {

class Exchange;
struct ErrorFeedback;

class CodecSteps {
 public:
  virtual ~CodecSteps() = default;

  // `count` floats where the data lives, for the sum of this rank's shard; valid for the call.
  virtual float* sum_memory(Exchange& ex, size_t count) = 0;
  // Elements summed per pass over every rank's contribution (whole codec blocks, at least one):
  // the sum's order per element is the same whatever the tile, so only speed depends on it.
  virtual size_t tile_elements(const compression::CodecConfig& config,
                               size_t piece_elements) const = 0;

  // payload = encode(input[0, count)); with `residual` (count floats where the data lives),
  // error feedback, the residual updated in place. The payload is complete on return.
  virtual void encode(const compression::CodecConfig& config, const float* input, float* residual,
                      size_t count, std::span<uint8_t> payload) = 0;
  // values[0, count) = 0.
  virtual void zero(float* values, size_t count) = 0;
  // sum[i] += values[i] for i in [0, count).
  virtual void add(float* sum, const float* values, size_t count) = 0;
  // sum[0, count) += decode(payload)[first, first + count); `first` is a multiple of
  // tile_elements().
  virtual void decode_accumulate(std::span<const uint8_t> payload, size_t first, float* sum,
                                 size_t count) = 0;
  // output[0, count) = decode(payload).
  virtual void decode(std::span<const uint8_t> payload, float* output, size_t count) = 0;
  // A non-finite result (an overflowing or NaN gradient) would leave NaN or Inf in the residuals
  // and poison every later call even if the caller skips this step: zero both then.
  virtual void reset_if_not_finite(const float* data, size_t count,
                                   const ErrorFeedback& feedback) = 0;
};

// The CPU codecs on host memory; sums in cache-sized tiles where the codec decodes ranges.
class HostCodecSteps final : public CodecSteps {
 public:
  float* sum_memory(Exchange& ex, size_t count) override;
  size_t tile_elements(const compression::CodecConfig& config,
                       size_t piece_elements) const override;
  void encode(const compression::CodecConfig& config, const float* input, float* residual,
              size_t count, std::span<uint8_t> payload) override;
  void zero(float* values, size_t count) override;
  void add(float* sum, const float* values, size_t count) override;
  void decode_accumulate(std::span<const uint8_t> payload, size_t first, float* sum,
                         size_t count) override;
  void decode(std::span<const uint8_t> payload, float* output, size_t count) override;
  void reset_if_not_finite(const float* data, size_t count, const ErrorFeedback& feedback) override;
};

}  // namespace torchwan::engine
