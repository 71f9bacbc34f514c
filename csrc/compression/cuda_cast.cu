// fp16 / bf16 casts on the GPU, element by element with the conversions of scalar_math.h.
#include "csrc/compression/cuda_kernels.h"
#include "csrc/compression/scalar_math.h"

namespace torchwan::compression::cuda {
namespace {

constexpr unsigned kThreads = 256;

template <bool kBFloat16>
__device__ uint16_t to_narrow(float value) {
  return kBFloat16 ? math::float_to_bfloat16(value) : math::float_to_half(value);
}

template <bool kBFloat16>
__device__ float from_narrow(uint16_t value) {
  return kBFloat16 ? math::bfloat16_to_float(value) : math::half_to_float(value);
}

template <bool kBFloat16, bool kResidual>
__global__ void encode_cast_kernel(const float* __restrict__ input, float* __restrict__ residual,
                                   size_t count, uint16_t* __restrict__ codes) {
  const size_t stride = static_cast<size_t>(gridDim.x) * blockDim.x;
  for (size_t i = static_cast<size_t>(blockIdx.x) * blockDim.x + threadIdx.x; i < count;
       i += stride) {
    const float value = kResidual ? math::add_residual(input[i], residual[i]) : input[i];
    const uint16_t code = to_narrow<kBFloat16>(value);
    codes[i] = code;
    if (kResidual) residual[i] = value - from_narrow<kBFloat16>(code);
  }
}

template <bool kBFloat16, bool kAccumulate>
__global__ void decode_cast_kernel(const uint16_t* __restrict__ codes, size_t count,
                                   float* __restrict__ output) {
  const size_t stride = static_cast<size_t>(gridDim.x) * blockDim.x;
  for (size_t i = static_cast<size_t>(blockIdx.x) * blockDim.x + threadIdx.x; i < count;
       i += stride) {
    const float value = from_narrow<kBFloat16>(codes[i]);
    output[i] = kAccumulate ? output[i] + value : value;
  }
}

template <bool kBFloat16>
void encode_typed(const float* input, float* residual, size_t count, uint16_t* codes,
                  cudaStream_t stream) {
  const unsigned grid = grid_for(count, kThreads);
  if (residual == nullptr) {
    encode_cast_kernel<kBFloat16, false>
        <<<grid, kThreads, 0, stream>>>(input, nullptr, count, codes);
  } else {
    encode_cast_kernel<kBFloat16, true>
        <<<grid, kThreads, 0, stream>>>(input, residual, count, codes);
  }
}

template <bool kBFloat16>
void decode_typed(const uint16_t* codes, size_t count, float* output, bool accumulate,
                  cudaStream_t stream) {
  const unsigned grid = grid_for(count, kThreads);
  if (accumulate) {
    decode_cast_kernel<kBFloat16, true><<<grid, kThreads, 0, stream>>>(codes, count, output);
  } else {
    decode_cast_kernel<kBFloat16, false><<<grid, kThreads, 0, stream>>>(codes, count, output);
  }
}

}  // namespace

void launch_encode_cast(const ResolvedParams& params, uint64_t /*seed*/, const float* input,
                        float* residual, size_t count, uint8_t* payload, const Layout& layout,
                        cudaStream_t stream) {
  if (count == 0) return;
  auto* codes = reinterpret_cast<uint16_t*>(payload + layout.data_offset);
  if (params.codec == Codec::kBFloat16) {
    encode_typed<true>(input, residual, count, codes, stream);
  } else {
    encode_typed<false>(input, residual, count, codes, stream);
  }
}

void launch_decode_cast(const Header& header, const uint8_t* payload, const Layout& layout,
                        size_t count, float* output, bool accumulate, cudaStream_t stream) {
  if (count == 0) return;
  const auto* codes = reinterpret_cast<const uint16_t*>(payload + layout.data_offset);
  if (header.codec == Codec::kBFloat16) {
    decode_typed<true>(codes, count, output, accumulate, stream);
  } else {
    decode_typed<false>(codes, count, output, accumulate, stream);
  }
}

}  // namespace torchwan::compression::cuda
