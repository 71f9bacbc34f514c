// int8 and float8 block codecs on the CPU: per block, an absmax pass then a quantise pass, both
// plain loops over one block (which stays in L1) written to vectorise.
#include <cstring>

#include "csrc/compression/block_codes.h"
#include "csrc/compression/cpu_isa_kernels.h"

namespace torchwan::compression::cpu::TORCHWAN_CPU_ISA {
namespace {

template <class Code, bool kResidual, bool kStochastic>
void encode_blocks(const float* __restrict input, float* __restrict residual, size_t count,
                   uint32_t block_size, uint64_t seed, uint8_t* __restrict scales,
                   uint8_t* __restrict codes) {
  size_t block = 0;
  for (size_t begin = 0; begin < count; begin += block_size, ++block) {
    const size_t length = count - begin < block_size ? count - begin : block_size;
    const float* __restrict x = input + begin;
    float* __restrict r = kResidual ? residual + begin : nullptr;
    uint8_t* __restrict q = codes + begin;
    uint32_t absmax = 0;
    for (size_t j = 0; j < length; ++j) {
      const float t = kResidual ? math::add_residual(x[j], r[j]) : x[j];
      const uint32_t magnitude = math::magnitude_bits(t);
      absmax = magnitude > absmax ? magnitude : absmax;
    }
    const float scale = math::block_scale(absmax, Code::kMax);
    const float inverse = math::inverse_scale(scale);
    std::memcpy(scales + 4 * block, &scale, 4);
    for (size_t j = 0; j < length; ++j) {
      const float t = kResidual ? math::add_residual(x[j], r[j]) : x[j];
      const float units = to_code_units(t, inverse, Code::kMax);
      uint8_t code;
      if constexpr (kStochastic) {
        code = Code::encode_stochastic(units, math::random_unit(seed, begin + j));
      } else {
        code = Code::encode(units);
      }
      q[j] = code;
      if constexpr (kResidual) r[j] = t - Code::decode(code) * scale;
    }
  }
}

template <class Code, bool kAccumulate>
void decode_blocks(const uint8_t* __restrict scales, const uint8_t* __restrict codes, size_t count,
                   uint32_t block_size, float* __restrict output) {
  size_t block = 0;
  for (size_t begin = 0; begin < count; begin += block_size, ++block) {
    const size_t length = count - begin < block_size ? count - begin : block_size;
    float scale;
    std::memcpy(&scale, scales + 4 * block, 4);
    const uint8_t* __restrict q = codes + begin;
    float* __restrict out = output + begin;
    for (size_t j = 0; j < length; ++j) {
      const float value = Code::decode(q[j]) * scale;
      out[j] = kAccumulate ? out[j] + value : value;
    }
  }
}

template <class Code, bool kStochastic>
void encode_with(const float* input, float* residual, size_t count, uint32_t block_size,
                 uint64_t seed, uint8_t* scales, uint8_t* codes) {
  if (residual == nullptr) {
    encode_blocks<Code, false, kStochastic>(input, nullptr, count, block_size, seed, scales, codes);
  } else {
    encode_blocks<Code, true, kStochastic>(input, residual, count, block_size, seed, scales, codes);
  }
}

}  // namespace

void encode_block(const ResolvedParams& params, uint64_t seed, const float* input, float* residual,
                  size_t count, uint8_t* payload, const Layout& layout) {
  uint8_t* scales = payload + layout.scales_offset;
  uint8_t* codes = payload + layout.data_offset;
  if (params.codec == Codec::kFloat8Block) {
    encode_with<Float8Code, false>(input, residual, count, params.block_size, seed, scales, codes);
  } else if (params.stochastic) {
    encode_with<Int8Code, true>(input, residual, count, params.block_size, seed, scales, codes);
  } else {
    encode_with<Int8Code, false>(input, residual, count, params.block_size, seed, scales, codes);
  }
}

void decode_block(const Header& header, const uint8_t* payload, const Layout& layout, size_t count,
                  float* output, bool accumulate) {
  const uint8_t* scales = payload + layout.scales_offset;
  const uint8_t* codes = payload + layout.data_offset;
  const uint32_t block_size = header.block_size;
  if (header.codec == Codec::kFloat8Block) {
    accumulate ? decode_blocks<Float8Code, true>(scales, codes, count, block_size, output)
               : decode_blocks<Float8Code, false>(scales, codes, count, block_size, output);
  } else {
    accumulate ? decode_blocks<Int8Code, true>(scales, codes, count, block_size, output)
               : decode_blocks<Int8Code, false>(scales, codes, count, block_size, output);
  }
}

}  // namespace torchwan::compression::cpu::TORCHWAN_CPU_ISA
