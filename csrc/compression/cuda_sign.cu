// 1-bit sign codec on the GPU: one warp per block. Lane l sums |t| over elements l, l + 32, ...
// and the warp combines lanes with shuffles in the canonical order of block_codes.h; each ballot
// of 32 sign bits is one little-endian word of the bit section.
#include "csrc/compression/block_codes.h"
#include "csrc/compression/cuda_kernels.h"

namespace torchwan::compression::cuda {
namespace {

constexpr unsigned kThreads = 256;
constexpr unsigned kWarpsPerCta = kThreads / 32;
constexpr unsigned kFullMask = 0xFFFFFFFFu;

template <bool kResidual>
__global__ void encode_sign_kernel(const float* __restrict__ input, float* __restrict__ residual,
                                   size_t count, uint32_t block_size, size_t block_count,
                                   float* __restrict__ scales, uint32_t* __restrict__ words) {
  const unsigned lane = threadIdx.x % 32;
  const size_t warps = static_cast<size_t>(gridDim.x) * kWarpsPerCta;
  for (size_t block = static_cast<size_t>(blockIdx.x) * kWarpsPerCta + threadIdx.x / 32;
       block < block_count; block += warps) {
    const size_t begin = block * block_size;
    const size_t length = count - begin < block_size ? count - begin : block_size;
    float sum = 0.0f;
    for (size_t j = lane; j < length; j += 32) {
      const float t =
          kResidual ? math::add_residual(input[begin + j], residual[begin + j]) : input[begin + j];
      sum = sum + math::float_from_bits(math::magnitude_bits(t));
    }
    // Lane l (< h) adds lane l + h: the tree of block_codes.h; lane 0 ends with the total.
    for (int half = kSignLanes / 2; half >= 1; half /= 2) {
      const float upper = __shfl_down_sync(kFullMask, sum, half);
      sum = sum + upper;
    }
    const float total = __shfl_sync(kFullMask, sum, 0);
    const float scale = sign_scale(total, static_cast<uint32_t>(length));
    if (lane == 0) scales[block] = scale;
    for (size_t base = 0; base < length; base += 32) {
      const size_t i = begin + base + lane;
      const bool valid = base + lane < length;
      float t = 0.0f;
      if (valid) t = kResidual ? math::add_residual(input[i], residual[i]) : input[i];
      const uint32_t bit = valid ? sign_bit(t) : 0u;
      const uint32_t word = __ballot_sync(kFullMask, bit != 0);
      if (lane == 0) words[(begin + base) / 32] = word;
      if (kResidual && valid) residual[i] = t - sign_decode(bit, scale);
    }
  }
}

template <bool kAccumulate>
__global__ void decode_sign_kernel(const float* __restrict__ scales,
                                   const uint32_t* __restrict__ words, size_t count,
                                   unsigned block_shift, float* __restrict__ output) {
  const size_t stride = static_cast<size_t>(gridDim.x) * blockDim.x;
  for (size_t i = static_cast<size_t>(blockIdx.x) * blockDim.x + threadIdx.x; i < count;
       i += stride) {
    const uint32_t bit = (words[i / 32] >> (i % 32)) & 1u;
    const float value = sign_decode(bit, scales[i >> block_shift]);
    output[i] = kAccumulate ? output[i] + value : value;
  }
}

}  // namespace

void launch_encode_sign(const ResolvedParams& params, uint64_t /*seed*/, const float* input,
                        float* residual, size_t count, uint8_t* payload, const Layout& layout,
                        cudaStream_t stream) {
  if (count == 0) return;
  const uint32_t block_size = params.block_size;
  auto* scales = reinterpret_cast<float*>(payload + layout.scales_offset);
  auto* words = reinterpret_cast<uint32_t*>(payload + layout.data_offset);
  const size_t blocks = layout.block_count;
  const unsigned grid = grid_for(blocks * 32, kThreads);
  if (residual == nullptr) {
    encode_sign_kernel<false>
        <<<grid, kThreads, 0, stream>>>(input, nullptr, count, block_size, blocks, scales, words);
  } else {
    encode_sign_kernel<true>
        <<<grid, kThreads, 0, stream>>>(input, residual, count, block_size, blocks, scales, words);
  }
}

void launch_decode_sign(const Header& header, const uint8_t* payload, const Layout& layout,
                        size_t count, float* output, bool accumulate, cudaStream_t stream) {
  if (count == 0) return;
  const uint32_t block_size = header.block_size;
  const auto* scales = reinterpret_cast<const float*>(payload + layout.scales_offset);
  const auto* words = reinterpret_cast<const uint32_t*>(payload + layout.data_offset);
  unsigned shift = 0;
  while ((uint32_t{1} << shift) < block_size) ++shift;
  const unsigned grid = grid_for(count, kThreads);
  if (accumulate) {
    decode_sign_kernel<true><<<grid, kThreads, 0, stream>>>(scales, words, count, shift, output);
  } else {
    decode_sign_kernel<false><<<grid, kThreads, 0, stream>>>(scales, words, count, shift, output);
  }
}

}  // namespace torchwan::compression::cuda
