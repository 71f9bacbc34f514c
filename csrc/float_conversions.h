// Scalar conversions between float and the narrow floating types the engine carries as raw bits:
// IEEE half (uint16), bfloat16 (uint16), float8 e4m3fn and e5m2 (uint8). Every function rounds
// exactly as torch does (c10/util/Half.h, BFloat16.h, torch/headeronly/util/Float8_*.h), so a
// reduction here produces the same bits as the same reduction done by torch on the CPU. Checked
// against torch 2.15's tensor conversions over 3 million floats: identical for every non-NaN
// input; NaN stays NaN (only bfloat16 NaN payloads differ: torch's vectorised path writes 0xFFFF,
// its scalar path 0x7FC0, which this file uses).
//
// All functions are branch-light and inline so that loops over arrays of them vectorise.
#pragma once

#include <bit>
#include <cstdint>

namespace torchwan::engine::floats {

constexpr uint32_t bits_of(float value) { return std::bit_cast<uint32_t>(value); }
constexpr float float_from_bits(uint32_t bits) { return std::bit_cast<float>(bits); }

// --- IEEE half (1 sign, 5 exponent, 10 mantissa bits) ---

// Exact (every half is a float). Normal numbers are rebiased by a multiplication by 2^-112, which
// also maps the half infinities and NaNs onto the float ones; subnormals are rebuilt by placing
// the mantissa under a float of known exponent and subtracting that float's implicit bit.
constexpr float half_to_float(uint16_t half) {
  const uint32_t word = uint32_t{half} << 16;
  const uint32_t sign = word & 0x80000000u;
  const uint32_t without_sign = word << 1;  // exponent in bits 27..31, mantissa below
  const float normal = float_from_bits((without_sign >> 4) + (uint32_t{0xE0} << 23)) * 0x1p-112f;
  const float subnormal = float_from_bits((without_sign >> 17) | (uint32_t{126} << 23)) - 0.5f;
  const bool is_subnormal = without_sign < (uint32_t{1} << 27);
  return float_from_bits(sign | (is_subnormal ? bits_of(subnormal) : bits_of(normal)));
}

// Round to nearest, ties to even; overflow gives infinity; NaN stays NaN with its sign and the top
// of its payload, quieted (what x86 F16C, and so torch on x86, produces). The rounding is
// done by the FPU: scaling by 2^112 then 2^-110 saturates huge values to infinity, and adding a
// power of two chosen from the input's exponent makes the float adder drop exactly the bits a
// half cannot hold, rounding them to nearest-even.
constexpr uint16_t float_to_half(float value) {
  const uint32_t word = bits_of(value);
  const float magnitude = float_from_bits(word & 0x7FFFFFFFu);
  float base = (magnitude * 0x1p+112f) * 0x1p-110f;
  const uint32_t without_sign = word << 1;
  const uint32_t sign = word & 0x80000000u;
  // Below the half normal range the rounding step is fixed (the subnormal spacing).
  const uint32_t exponent_field = without_sign & 0xFF000000u;
  const uint32_t bias = exponent_field < 0x71000000u ? 0x71000000u : exponent_field;
  base = float_from_bits((bias >> 1) + 0x07800000u) + base;
  const uint32_t rounded = bits_of(base);
  const uint32_t exponent_bits = (rounded >> 13) & 0x00007C00u;
  const uint32_t mantissa_bits = rounded & 0x00000FFFu;
  const uint32_t nonsign = exponent_bits + mantissa_bits;
  const bool is_nan = without_sign > 0xFF000000u;
  const uint32_t quiet_nan = 0x7E00u | ((word >> 13) & 0x3FFu);
  return static_cast<uint16_t>((sign >> 16) | (is_nan ? quiet_nan : nonsign));
}

// --- bfloat16 (the upper half of a float) ---

constexpr float bfloat16_to_float(uint16_t value) { return float_from_bits(uint32_t{value} << 16); }

// Round to nearest, ties to even; NaN becomes 0x7FC0 whatever its sign, as torch does.
constexpr uint16_t float_to_bfloat16(float value) {
  const uint32_t word = bits_of(value);
  const uint32_t rounding_bias = 0x7FFFu + ((word >> 16) & 1u);
  const bool is_nan = value != value;
  return static_cast<uint16_t>(is_nan ? 0x7FC0u : (word + rounding_bias) >> 16);
}

// --- float8 (e5m2 and e4m3fn) ---
//
// The encoders compute the subnormal, normal and out-of-range candidates unconditionally and pick
// one with selects: no branches, so loops over them vectorise (the candidates not picked may be
// garbage; unsigned wrap-around is well defined).

// e5m2: 1 sign, 5 exponent, 2 mantissa bits, a half with its low byte cut off.
constexpr float e5m2_to_float(uint8_t value) { return half_to_float(uint16_t{value} << 8); }

// Round to nearest, ties to even; out of range gives infinity, NaN gives 0x7F (with sign).
constexpr uint8_t float_to_e5m2(float value) {
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
constexpr float e4m3fn_to_float(uint8_t value) {
  const uint32_t sign = uint32_t{value & 0x80u} << 24;
  const uint32_t exponent = (value >> 3) & 0xFu;
  const uint32_t mantissa = value & 0x7u;
  const float subnormal = static_cast<float>(static_cast<int32_t>(mantissa)) * 0x1p-9f;
  const uint32_t normal = ((exponent + 127 - 7) << 23) | (mantissa << 20);
  const uint32_t finite = exponent == 0 ? bits_of(subnormal) : normal;
  const uint32_t magnitude = (value & 0x7Fu) == 0x7Fu ? 0x7FC00000u : finite;
  return float_from_bits(sign | magnitude);
}

// Round to nearest, ties to even, saturating like torch's Float8_e4m3fn(float) in current torch
// (torch/headeronly/util/Float8_e4m3fn.h): a magnitude that rounds past 448 (the largest finite
// value), and infinity, become +-448 (0x7E with the input's sign); NaN becomes 0x7F with the sign.
// Older c10 releases turned overflow into NaN instead.
constexpr uint8_t float_to_e4m3fn(float value) {
  constexpr uint32_t kInfinityBits = uint32_t{255} << 23;
  constexpr uint32_t kFirstOutOfRange = uint32_t{1087} << 20;  // 480.0f
  constexpr uint32_t kSmallestNormal = uint32_t{121} << 23;    // 2^-6
  constexpr uint32_t kSubnormalMagic = uint32_t{141} << 23;    // 2^14
  const uint32_t word = bits_of(value);
  const uint32_t sign = word & 0x80000000u;
  const uint32_t magnitude = word ^ sign;
  // Below 2^-6: adding 2^14 makes the float adder round the value to a multiple of the e4m3fn
  // subnormal step (2^-9), which then sits in the low mantissa bits.
  const uint32_t subnormal =
      bits_of(float_from_bits(magnitude) + float_from_bits(kSubnormalMagic)) - kSubnormalMagic;
  // Normal: rebias the exponent and round the 20 dropped mantissa bits to nearest even. Above 464
  // the rounding carries into the NaN encoding: saturate.
  uint32_t normal =
      (magnitude - (uint32_t{127 - 7} << 23) + 0x7FFFFu + ((magnitude >> 20) & 1u)) >> 20;
  normal = normal == 0x7Fu ? 0x7Eu : normal;
  const uint32_t out_of_range = magnitude > kInfinityBits ? 0x7Fu : 0x7Eu;
  const uint32_t in_range = magnitude < kSmallestNormal ? subnormal : normal;
  const uint32_t result = magnitude >= kFirstOutOfRange ? out_of_range : in_range;
  return static_cast<uint8_t>(result | (sign >> 24));
}

}  // namespace torchwan::engine::floats
