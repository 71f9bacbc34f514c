#include "c10d_backend/cuda_codec_steps.h"

#include <c10/util/Exception.h>
#include <cuda_runtime_api.h>

#include <algorithm>

#include "csrc/compressed_allreduce.h"
#include "csrc/compression/cuda_codec.h"

namespace torchwan::c10d_backend {
namespace {

namespace cuda = compression::cuda;

cudaStream_t raw(const c10::Stream& stream) {
  return static_cast<cudaStream_t>(stream.native_handle());
}

at::Tensor host_bytes(std::span<const uint8_t> bytes) {
  // The transport's buffer, read or written in place; the copies below are synchronous.
  return at::from_blob(const_cast<uint8_t*>(bytes.data()), {static_cast<int64_t>(bytes.size())},
                       at::TensorOptions().dtype(at::kByte));
}

}  // namespace

CudaCodecSteps::CudaCodecSteps(const c10::Stream& stream) : stream_(stream) {}

at::Tensor CudaCodecSteps::floats(const float* data, size_t count) const {
  return at::from_blob(const_cast<float*>(data), {static_cast<int64_t>(count)},
                       at::TensorOptions().dtype(at::kFloat).device(stream_.device()));
}

at::Tensor CudaCodecSteps::to_device(std::span<const uint8_t> payload) {
  at::Tensor device = at::empty({static_cast<int64_t>(payload.size())},
                                at::TensorOptions().dtype(at::kByte).device(stream_.device()));
  device.copy_(host_bytes(payload));
  pcie_bytes_ += payload.size();
  return device;
}

float* CudaCodecSteps::sum_memory(engine::Exchange& /*ex*/, size_t count) {
  sum_ = at::empty({static_cast<int64_t>(std::max<size_t>(count, 1))},
                   at::TensorOptions().dtype(at::kFloat).device(stream_.device()));
  return sum_.data_ptr<float>();
}

size_t CudaCodecSteps::tile_elements(const compression::CodecConfig& /*config*/,
                                     size_t piece_elements) const {
  // The kernels decode whole payloads, and a piece fills the GPU better than a tile would.
  return std::max<size_t>(piece_elements, 1);
}

void CudaCodecSteps::encode(const compression::CodecConfig& config, const float* input,
                            float* residual, size_t count, std::span<uint8_t> payload) {
  at::Tensor device = at::empty({static_cast<int64_t>(payload.size())},
                                at::TensorOptions().dtype(at::kByte).device(stream_.device()));
  uint8_t* out = device.data_ptr<uint8_t>();
  if (residual == nullptr) {
    cuda::encode(config, input, count, out, payload.size(), raw(stream_));
  } else {
    cuda::encode_with_error_feedback(config, input, residual, count, out, payload.size(),
                                     raw(stream_));
  }
  host_bytes(payload).copy_(device);  // waits for the kernels: the payload is sent next
  pcie_bytes_ += payload.size();
}

void CudaCodecSteps::zero(float* values, size_t count) { floats(values, count).zero_(); }

void CudaCodecSteps::add(float* sum, const float* values, size_t count) {
  floats(sum, count).add_(floats(values, count));
}

void CudaCodecSteps::decode_accumulate(std::span<const uint8_t> payload, size_t first, float* sum,
                                       size_t count) {
  TORCH_INTERNAL_ASSERT(first == 0, "CUDA payloads are summed whole");
  const at::Tensor device = to_device(payload);
  cuda::decode_accumulate(device.data_ptr<uint8_t>(), payload.size(), sum, count, raw(stream_));
}

void CudaCodecSteps::decode(std::span<const uint8_t> payload, float* output, size_t count) {
  const at::Tensor device = to_device(payload);
  cuda::decode(device.data_ptr<uint8_t>(), payload.size(), output, count, raw(stream_));
}

void CudaCodecSteps::reset_if_not_finite(const float* data, size_t count,
                                         const engine::ErrorFeedback& feedback) {
  if (floats(data, count).isfinite().all().item<bool>()) return;
  floats(feedback.contribution.data(), feedback.contribution.size()).zero_();
  floats(feedback.reduction.data(), feedback.reduction.size()).zero_();
}

}  // namespace torchwan::c10d_backend
