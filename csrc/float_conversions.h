// Scalar conversions between float and the narrow floating types the engine carries as raw bits:
// IEEE half (uint16), bfloat16 (uint16), float8 e4m3fn and e5m2 (uint8). Every function rounds
// exactly as torch does (c10/util/Half.h, BFloat16.h, torch/headeronly/util/Float8_*.h), so a
// reduction here produces the same bits as the same reduction done by torch on the CPU. Checked
// against torch 2.15's tensor conversions over 3 million floats: identical for every non-NaN
// input; NaN stays NaN (only bfloat16 NaN payloads differ: torch's vectorised path writes 0xFFFF,
// its scalar path 0x7FC0, which this file uses).
//
// All functions are branch-light and inline so that loops over arrays of them vectorise. One set of
// conversions serves the engine and the codecs: these wrap compression/scalar_math.h.
#pragma once

#include <cstdint>

#include "csrc/compression/scalar_math.h"

namespace torchwan::engine::floats {

using compression::math::bits_of;
using compression::math::float_from_bits;

// The conversions are the codecs' (compression/scalar_math.h), which round every non-NaN value
// exactly as torch does; only NaN differs, where torch keeps the payload of a half and writes one
// canonical bfloat16.

// Exact (every half is a float); a NaN half becomes a quiet NaN with its payload, as torch's does.
inline float half_to_float(uint16_t half) {
  const bool is_nan = (half & 0x7C00u) == 0x7C00u && (half & 0x3FFu) != 0;
  const float value = compression::math::half_to_float(half);
  return is_nan ? float_from_bits(bits_of(value) | 0x00400000u) : value;
}

// Round to nearest, ties to even; overflow gives infinity; NaN stays NaN with its sign and the top
// of its payload, quieted (what x86 F16C, and so torch on x86, produces).
inline uint16_t float_to_half(float value) {
  const uint32_t word = bits_of(value);
  const uint16_t quiet_nan =
      static_cast<uint16_t>(((word >> 16) & 0x8000u) | 0x7E00u | ((word >> 13) & 0x3FFu));
  return value != value ? quiet_nan : compression::math::float_to_half(value);
}

inline float bfloat16_to_float(uint16_t value) {
  return compression::math::bfloat16_to_float(value);
}

// Round to nearest, ties to even; NaN becomes 0x7FC0 whatever its sign, as torch does.
inline uint16_t float_to_bfloat16(float value) {
  return value != value ? uint16_t{0x7FC0} : compression::math::float_to_bfloat16(value);
}

// --- float8 (e5m2 and e4m3fn) ---
//
// The encoders compute the subnormal, normal and out-of-range candidates unconditionally and pick
// one with selects: no branches, so loops over them vectorise (the candidates not picked may be
// garbage; unsigned wrap-around is well defined).

// e5m2: 1 sign, 5 exponent, 2 mantissa bits, a half with its low byte cut off.
inline float e5m2_to_float(uint8_t value) { return half_to_float(uint16_t{value} << 8); }

// Round to nearest, ties to even; out of range gives infinity, NaN gives 0x7F (with sign).
inline uint8_t float_to_e5m2(float value) {
  constexpr uint32_t kInfinityBits = uint32_t{255} << 23;
  constexpr uint32_t kFirstOutOfRange = uint32_t{143} << 23;  // 65536.0f
  constexpr uint32_t kSmallestNormal = uint32_t{113} << 23;   // 2^-14
  constexpr uint32_t kSubnormalMagic = uint32_t{134} << 23;   // 2^7
  const uint32_t word = bits_of(value);
  const uint32_t sign = word & 0x80000000u;
  const uint32_t magnitude = word ^ sign;
  // Below 2^-14: adding 2^7 makes the float adder round the value to a multiple of the e5m2
  // subnormal step (2^-16), which then sits in the low mantissa bits.
  const uint32_t subnormal =
      bits_of(float_from_bits(magnitude) + float_from_bits(kSubnormalMagic)) - kSubnormalMagic;
  // Normal: rebias the exponent and round the 21 dropped mantissa bits to nearest even.
  const uint32_t normal =
      (magnitude - (uint32_t{127 - 15} << 23) + 0xFFFFFu + ((magnitude >> 21) & 1u)) >> 21;
  const uint32_t out_of_range = magnitude > kInfinityBits ? 0x7Fu : 0x7Cu;
  const uint32_t in_range = magnitude < kSmallestNormal ? subnormal : normal;
  const uint32_t result = magnitude >= kFirstOutOfRange ? out_of_range : in_range;
  return static_cast<uint8_t>(result | (sign >> 24));
}

// e4m3fn: 1 sign, 4 exponent, 3 mantissa bits, no infinities, NaN = S.1111.111. Exact.
inline float e4m3fn_to_float(uint8_t value) { return compression::math::e4m3_to_float(value); }

// Round to nearest, ties to even, saturating like torch's Float8_e4m3fn(float) in current torch
// (torch/headeronly/util/Float8_e4m3fn.h): a magnitude that rounds past 448 (the largest finite
// value), and infinity, become +-448 (0x7E with the input's sign); NaN becomes 0x7F with the sign.
// Older c10 releases turned overflow into NaN instead.
inline uint8_t float_to_e4m3fn(float value) { return compression::math::float_to_e4m3(value); }

}  // namespace torchwan::engine::floats
