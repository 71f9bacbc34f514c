// int8 and float8 block codecs on the GPU: one warp per block. The absmax is an integer max over
// magnitude bits (exact in any order), then every lane quantises its strided share of the block.
#include "csrc/compression/block_codes.h"
#include "csrc/compression/cuda_kernels.h"

namespace torchwan::compression::cuda {
namespace {

constexpr unsigned kThreads = 256;
constexpr unsigned kWarpsPerCta = kThreads / 32;
constexpr unsigned kFullMask = 0xFFFFFFFFu;

template <class Code, bool kResidual, bool kStochastic>
__global__ void encode_block_kernel(const float* __restrict__ input, float* __restrict__ residual,
                                    size_t count, uint32_t block_size, size_t block_count,
                                    uint64_t seed, float* __restrict__ scales,
                                    uint8_t* __restrict__ codes) {
  const unsigned lane = threadIdx.x % 32;
  const size_t warps = static_cast<size_t>(gridDim.x) * kWarpsPerCta;
  for (size_t block = static_cast<size_t>(blockIdx.x) * kWarpsPerCta + threadIdx.x / 32;
       block < block_count; block += warps) {
    const size_t begin = block * block_size;
    const size_t length = count - begin < block_size ? count - begin : block_size;
    uint32_t absmax = 0;
    for (size_t j = lane; j < length; j += 32) {
      const float t =
          kResidual ? math::add_residual(input[begin + j], residual[begin + j]) : input[begin + j];
      absmax = max(absmax, math::magnitude_bits(t));
    }
    for (int offset = 16; offset >= 1; offset /= 2) {
      absmax = max(absmax, __shfl_xor_sync(kFullMask, absmax, offset));
    }
    const float scale = math::block_scale(absmax, Code::kMax);
    const float inverse = math::inverse_scale(scale);
    if (lane == 0) scales[block] = scale;
    for (size_t j = lane; j < length; j += 32) {
      const size_t i = begin + j;
      const float t = kResidual ? math::add_residual(input[i], residual[i]) : input[i];
      const float units = to_code_units(t, inverse, Code::kMax);
      uint8_t code;
      if constexpr (kStochastic) {
        code = Code::encode_stochastic(units, math::random_unit(seed, i));
      } else {
        code = Code::encode(units);
      }
      codes[i] = code;
      if (kResidual) residual[i] = t - Code::decode(code) * scale;
    }
  }
}

template <class Code, bool kAccumulate>
__global__ void decode_block_kernel(const float* __restrict__ scales,
                                    const uint8_t* __restrict__ codes, size_t count,
                                    unsigned block_shift, float* __restrict__ output) {
  const size_t stride = static_cast<size_t>(gridDim.x) * blockDim.x;
  for (size_t i = static_cast<size_t>(blockIdx.x) * blockDim.x + threadIdx.x; i < count;
       i += stride) {
    const float value = Code::decode(codes[i]) * scales[i >> block_shift];
    output[i] = kAccumulate ? output[i] + value : value;
  }
}

template <class Code, bool kStochastic>
void encode_with(const float* input, float* residual, size_t count, uint32_t block_size,
                 size_t block_count, uint64_t seed, float* scales, uint8_t* codes,
                 cudaStream_t stream) {
  const unsigned grid = grid_for(block_count * 32, kThreads);
  if (residual == nullptr) {
    encode_block_kernel<Code, false, kStochastic><<<grid, kThreads, 0, stream>>>(
        input, nullptr, count, block_size, block_count, seed, scales, codes);
  } else {
    encode_block_kernel<Code, true, kStochastic><<<grid, kThreads, 0, stream>>>(
        input, residual, count, block_size, block_count, seed, scales, codes);
  }
}

template <class Code>
void decode_with(const float* scales, const uint8_t* codes, size_t count, uint32_t block_size,
                 float* output, bool accumulate, cudaStream_t stream) {
  unsigned shift = 0;
  while ((uint32_t{1} << shift) < block_size) ++shift;  // block sizes are powers of two
  const unsigned grid = grid_for(count, kThreads);
  if (accumulate) {
    decode_block_kernel<Code, true>
        <<<grid, kThreads, 0, stream>>>(scales, codes, count, shift, output);
  } else {
    decode_block_kernel<Code, false>
        <<<grid, kThreads, 0, stream>>>(scales, codes, count, shift, output);
  }
}

}  // namespace

void launch_encode_block(const ResolvedParams& params, uint64_t seed, const float* input,
                         float* residual, size_t count, uint8_t* payload, const Layout& layout,
                         cudaStream_t stream) {
  if (count == 0) return;
  auto* scales = reinterpret_cast<float*>(payload + layout.scales_offset);
  uint8_t* codes = payload + layout.data_offset;
  const size_t blocks = layout.block_count;
  if (params.codec == Codec::kFloat8Block) {
    encode_with<Float8Code, false>(input, residual, count, params.block_size, blocks, seed, scales,
                                   codes, stream);
  } else if (params.stochastic) {
    encode_with<Int8Code, true>(input, residual, count, params.block_size, blocks, seed, scales,
                                codes, stream);
  } else {
    encode_with<Int8Code, false>(input, residual, count, params.block_size, blocks, seed, scales,
                                 codes, stream);
  }
}

void launch_decode_block(const Header& header, const uint8_t* payload, const Layout& layout,
                         size_t count, float* output, bool accumulate, cudaStream_t stream) {
  if (count == 0) return;
  const auto* scales = reinterpret_cast<const float*>(payload + layout.scales_offset);
  const uint8_t* codes = payload + layout.data_offset;
  const uint32_t block_size = header.block_size;
  if (header.codec == Codec::kFloat8Block) {
    decode_with<Float8Code>(scales, codes, count, block_size, output, accumulate, stream);
  } else {
    decode_with<Int8Code>(scales, codes, count, block_size, output, accumulate, stream);
  }
}

}  // namespace torchwan::compression::cuda
