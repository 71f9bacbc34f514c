// The compressed allreduce's codec steps for fp32 data on a CUDA device (engine::CodecSteps): the
// CUDA codec kernels encode, decode and accumulate on the GPU, and only the payloads cross PCIe,
// so the bytes copied between host and device drop by the codec's ratio against staging the
// whole buffer. The kernels write the same bytes as the CPU reference and the sum adds in the
// same order per element, so results are bit-identical to the host path.
#pragma once

#include <ATen/ATen.h>
#include <c10/core/Stream.h>

#include <cstdint>

#include "csrc/codec_steps.h"

namespace torchwan::c10d_backend {

// Whether this build runs the codecs of device tensors on the device (the backend accepts CUDA
// tensors and the codec library has its CUDA kernels); otherwise they are staged to the host.
bool device_codecs_built();

class CudaCodecSteps final : public engine::CodecSteps {
 public:
  // Queues everything on `stream` (the group's comm stream on the data's device), which must be
  // the current stream while the steps run.
  explicit CudaCodecSteps(const c10::Stream& stream);

  // Payload bytes copied between host and device so far.
  uint64_t pcie_bytes() const { return pcie_bytes_; }

  float* sum_memory(engine::Exchange& ex, size_t count) override;
  size_t tile_elements(const compression::CodecConfig& config,
                       size_t piece_elements) const override;
  void encode(const compression::CodecConfig& config, const float* input, float* residual,
              size_t count, std::span<uint8_t> payload) override;
  void zero(float* values, size_t count) override;
  void add(float* sum, const float* values, size_t count) override;
  void decode_accumulate(std::span<const uint8_t> payload, size_t first, float* sum,
                         size_t count) override;
  void decode(std::span<const uint8_t> payload, float* output, size_t count) override;
  void reset_if_not_finite(const float* data, size_t count,
                           const engine::ErrorFeedback& feedback) override;

 private:
  // `payload` copied into fresh device memory (freed in stream order).
  at::Tensor to_device(std::span<const uint8_t> payload);
  // A device tensor over `count` floats at `data`.
  at::Tensor floats(const float* data, size_t count) const;

  c10::Stream stream_;
  at::Tensor sum_;
  uint64_t pcie_bytes_ = 0;
};

}  // namespace torchwan::c10d_backend
