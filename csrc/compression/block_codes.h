// Per-element code conversions of the block codecs and the canonical order of the sign codec's
// block sums, shared by the CPU reference and the CUDA kernels (see scalar_math.h for why).
#pragma once

#include <cstdint>

#include "csrc/compression/scalar_math.h"

namespace torchwan::compression {

// int8: codes in [-127, 127] (-128 is never produced, keeping the code symmetric).
struct Int8Code {
  static constexpr float kMax = 127.0f;
  TORCHWAN_HD static uint8_t encode(float code_value) {
    return static_cast<uint8_t>(static_cast<int8_t>(math::round_to_int(code_value)));
  }
  TORCHWAN_HD static uint8_t encode_stochastic(float code_value, float unit) {
    return static_cast<uint8_t>(static_cast<int8_t>(math::round_stochastic(code_value, unit)));
  }
  TORCHWAN_HD static float decode(uint8_t code) {
    return static_cast<float>(static_cast<int8_t>(code));
  }
};

// float8 e4m3fn: the scale maps the block absmax onto 448, the largest finite e4m3 value.
struct Float8Code {
  static constexpr float kMax = math::kE4M3Max;
  // code_value is clamped to [-448, 448] and not NaN (to_code_units).
  TORCHWAN_HD static uint8_t encode(float code_value) {
    return math::clamped_float_to_e4m3(code_value);
  }
  TORCHWAN_HD static float decode(uint8_t code) { return math::e4m3_to_float(code); }
};

// Code value of one element: scaled into code units, clamped, NaN mapped to 0 (a NaN or Inf
// element already made its block's scale NaN).
TORCHWAN_HD float to_code_units(float value, float inverse, float limit) {
  return math::clamp_code(value * inverse, limit);
}

// The sign codec's scale is mean |x| over the block. Float addition is not associative, so the
// summation order is part of the format: 32 lanes, lane l adds elements l, l + 32, l + 64, ... of
// the block in order (starting from +0), then lanes are combined as a tree, lane l += lane l + h
// for h = 16, 8, 4, 2, 1. A CUDA warp does exactly this with shuffles; the CPU loop vectorises.
constexpr int kSignLanes = 32;

TORCHWAN_HD float sign_scale(float lane0_total, uint32_t count) {
  return count == 0 ? 0.0f : math::canonical_nan(lane0_total / static_cast<float>(count));
}

// Bit set means negative. NaN compares false: decodes to +scale, but its block's scale is NaN.
TORCHWAN_HD uint32_t sign_bit(float value) { return value < 0.0f ? 1u : 0u; }

TORCHWAN_HD float sign_decode(uint32_t bit, float scale) { return bit != 0 ? -scale : scale; }

}  // namespace torchwan::compression
