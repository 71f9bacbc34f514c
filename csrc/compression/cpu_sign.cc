// 1-bit sign codec on the CPU: per block, the canonical 32-lane sum of |t| (block_codes.h), then
// one bit per element packed little-endian into 32-bit words (element i is bit i % 32 of word
// i / 32, i.e. bit i % 8 of byte i / 8).
#include <cstring>

#include "csrc/compression/block_codes.h"
#include "csrc/compression/cpu_isa_kernels.h"

namespace torchwan::compression::cpu::TORCHWAN_CPU_ISA {
namespace {

template <bool kResidual>
float block_abs_sum(const float* __restrict x, const float* __restrict r, size_t length) {
  float lanes[kSignLanes] = {};
  const size_t full = length - length % kSignLanes;
  for (size_t base = 0; base < full; base += kSignLanes) {
    for (int lane = 0; lane < kSignLanes; ++lane) {
      const float t =
          kResidual ? math::add_residual(x[base + lane], r[base + lane]) : x[base + lane];
      lanes[lane] += math::float_from_bits(math::magnitude_bits(t));
    }
  }
  for (size_t j = full; j < length; ++j) {
    const float t = kResidual ? math::add_residual(x[j], r[j]) : x[j];
    lanes[j - full] += math::float_from_bits(math::magnitude_bits(t));
  }
  for (int half = kSignLanes / 2; half >= 1; half /= 2) {
    for (int lane = 0; lane < half; ++lane) lanes[lane] += lanes[lane + half];
  }
  return lanes[0];
}

template <bool kResidual>
void encode_blocks(const float* __restrict input, float* __restrict residual, size_t count,
                   uint32_t block_size, uint8_t* __restrict scales, uint8_t* __restrict words) {
  size_t block = 0;
  for (size_t begin = 0; begin < count; begin += block_size, ++block) {
    const size_t length = count - begin < block_size ? count - begin : block_size;
    const float* __restrict x = input + begin;
    float* __restrict r = kResidual ? residual + begin : nullptr;
    const float sum = block_abs_sum<kResidual>(x, r, length);
    const float scale = sign_scale(sum, static_cast<uint32_t>(length));
    std::memcpy(scales + 4 * block, &scale, 4);
    // Blocks are multiples of 32 elements, so every block starts on a word boundary.
    for (size_t base = 0; base < length; base += 32) {
      const size_t lanes = length - base < 32 ? length - base : 32;
      uint32_t word = 0;
      for (size_t lane = 0; lane < lanes; ++lane) {
        const float t =
            kResidual ? math::add_residual(x[base + lane], r[base + lane]) : x[base + lane];
        const uint32_t bit = sign_bit(t);
        word |= bit << lane;
        if constexpr (kResidual) r[base + lane] = t - sign_decode(bit, scale);
      }
      std::memcpy(words + (begin + base) / 8, &word, 4);
    }
  }
}

template <bool kAccumulate>
void decode_blocks(const uint8_t* __restrict scales, const uint8_t* __restrict words, size_t count,
                   uint32_t block_size, float* __restrict output) {
  size_t block = 0;
  for (size_t begin = 0; begin < count; begin += block_size, ++block) {
    const size_t length = count - begin < block_size ? count - begin : block_size;
    float scale;
    std::memcpy(&scale, scales + 4 * block, 4);
    for (size_t base = 0; base < length; base += 32) {
      uint32_t word;
      std::memcpy(&word, words + (begin + base) / 8, 4);
      const size_t lanes = length - base < 32 ? length - base : 32;
      float* __restrict out = output + begin + base;
      for (size_t lane = 0; lane < lanes; ++lane) {
        const float value = sign_decode((word >> lane) & 1u, scale);
        out[lane] = kAccumulate ? out[lane] + value : value;
      }
    }
  }
}

}  // namespace

void encode_sign(const ResolvedParams& params, uint64_t /*seed*/, const float* input,
                 float* residual, size_t count, uint8_t* payload, const Layout& layout) {
  const uint32_t block_size = params.block_size;
  uint8_t* scales = payload + layout.scales_offset;
  uint8_t* words = payload + layout.data_offset;
  residual == nullptr ? encode_blocks<false>(input, nullptr, count, block_size, scales, words)
                      : encode_blocks<true>(input, residual, count, block_size, scales, words);
}

void decode_sign(const Header& header, const uint8_t* payload, const Layout& layout, size_t count,
                 float* output, bool accumulate) {
  const uint32_t block_size = header.block_size;
  const uint8_t* scales = payload + layout.scales_offset;
  const uint8_t* words = payload + layout.data_offset;
  accumulate ? decode_blocks<true>(scales, words, count, block_size, output)
             : decode_blocks<false>(scales, words, count, block_size, output);
}

}  // namespace torchwan::compression::cpu::TORCHWAN_CPU_ISA
