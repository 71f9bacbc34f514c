// Scalar arithmetic shared by the CPU reference and the CUDA kernels. Every codec decision that
// affects output bytes (format conversions, rounding, scale computation, random numbers) lives
// here, written once and compiled for both sides, so the two produce identical bytes by
// construction. Only IEEE-754 single-precision add/mul/div in round-to-nearest-even and integer
// operations are used; both sides are compiled without FMA contraction (-ffp-contract=off and
// nvcc --fmad=false) and without flush-to-zero, so each operation rounds the same way everywhere.
#pragma once

#include <cstdint>
#include <cstring>

#if defined(__CUDACC__)
#define TORCHWAN_HD __host__ __device__ __forceinline__
#else
#define TORCHWAN_HD inline __attribute__((always_inline))
#endif

namespace torchwan::compression::math {

TORCHWAN_HD uint32_t bits_of(float value) {
#if defined(__CUDA_ARCH__)
  return __float_as_uint(value);
#else
  uint32_t bits;
  std::memcpy(&bits, &value, sizeof(bits));
  return bits;
#endif
}

TORCHWAN_HD float float_from_bits(uint32_t bits) {
#if defined(__CUDA_ARCH__)
  return __uint_as_float(bits);
#else
  float value;
  std::memcpy(&value, &bits, sizeof(value));
  return value;
#endif
}

constexpr uint32_t kAbsMask = 0x7FFFFFFFu;
constexpr uint32_t kInfinityBits = 0x7F800000u;
constexpr uint32_t kCanonicalNaNBits = 0x7FC00000u;

// |value| as bits. For every float, ordering these as unsigned integers orders the magnitudes,
// with NaN above infinity; an integer max is exact and associative, so a block's absmax does not
// depend on the order in which a CPU loop or a GPU warp visits its elements.
TORCHWAN_HD uint32_t magnitude_bits(float value) { return bits_of(value) & kAbsMask; }

// NaN with the canonical bits. x86 and CUDA produce different NaN bits from the same arithmetic
// (x86 propagates an operand's payload and sign, CUDA returns 0x7FFFFFFF), so any NaN computed
// (rather than copied from the input) is canonicalised before its bits can reach a payload.
TORCHWAN_HD float canonical_nan(float value) {
  return value == value ? value : float_from_bits(kCanonicalNaNBits);
}

// gradient + residual, the value error feedback encodes.
TORCHWAN_HD float add_residual(float gradient, float residual) {
  return canonical_nan(gradient + residual);
}

// Scale of a block from its absmax, for a code whose largest magnitude is `code_max`. A block
// holding Inf or NaN gets a NaN scale (and codes of zero), so the decoded block is NaN and
// overflow detection downstream (e.g. a gradient scaler) still sees it.
TORCHWAN_HD float block_scale(uint32_t absmax_bits, float code_max) {
  if (absmax_bits >= kInfinityBits) return float_from_bits(kCanonicalNaNBits);
  return float_from_bits(absmax_bits) / code_max;
}

// The multiplier that maps a block into code units. Zero for an all-zero or non-finite block so
// that every finite element maps to 0; a tiny (subnormal) scale may give +Inf, which the clamps
// of the encoders absorb.
TORCHWAN_HD float inverse_scale(float scale) {
  const bool usable = scale > 0.0f && bits_of(scale) < kInfinityBits;
  return usable ? 1.0f / scale : 0.0f;
}

// Clamp into [-limit, limit] and map NaN to 0, with selects only (fminf/fmaxf and std::min treat
// NaN differently on different platforms; comparisons do not).
TORCHWAN_HD float clamp_code(float value, float limit) {
  value = value > limit ? limit : value;
  value = value < -limit ? -limit : value;
  return value == value ? value : 0.0f;
}

// Round to the nearest integer, ties to even, for |value| <= 2^22: adding 1.5 * 2^23 puts the
// value where the float spacing is exactly 1, so the adder performs the rounding, and the integer
// is read from the low mantissa bits.
constexpr float kRoundingMagic = 12582912.0f;  // 1.5 * 2^23
constexpr int32_t kRoundingMagicBits = 0x4B400000;
TORCHWAN_HD int32_t round_to_int(float value) {
  return static_cast<int32_t>(bits_of(value + kRoundingMagic)) - kRoundingMagicBits;
}

// --- Counter-based random numbers for stochastic rounding ---
//
// A stateless hash of (seed, element index): every element's random number is independent of how
// the work is split between threads, so CPU and GPU agree. Two rounds of a 32-bit integer
// finaliser (xor-shift / multiply), the 64-bit counter and seed folded in between.
TORCHWAN_HD uint32_t mix32(uint32_t x) {
  x ^= x >> 16;
  x *= 0x7FEB352Du;
  x ^= x >> 15;
  x *= 0x846CA68Bu;
  x ^= x >> 16;
  return x;
}

TORCHWAN_HD uint32_t random_bits(uint64_t seed, uint64_t index) {
  const uint32_t high = static_cast<uint32_t>(index >> 32) * 0x9E3779B9u;
  uint32_t x = mix32(static_cast<uint32_t>(index) ^ static_cast<uint32_t>(seed));
  x ^= static_cast<uint32_t>(seed >> 32) ^ high;
  return mix32(x + 0x6A09E667u);
}

// Uniform in [0, 1) on a grid of 2^-24 (exactly representable).
TORCHWAN_HD float random_unit(uint64_t seed, uint64_t index) {
  return static_cast<float>(random_bits(seed, index) >> 8) * 0x1p-24f;
}

// Stochastic rounding of a code value already clamped to [-limit, limit]: rounds up with
// probability equal to the fractional part (to 2^-24), so the expected code equals the input.
// floor(value) is exact, and so is value - floor(value).
TORCHWAN_HD int32_t round_stochastic(float value, float unit) {
  const int32_t nearest = round_to_int(value);
  const float nearest_float = static_cast<float>(nearest);
  const int32_t floor_value = nearest_float > value ? nearest - 1 : nearest;
  const float fraction = value - static_cast<float>(floor_value);
  return floor_value + (unit < fraction ? 1 : 0);
}

// --- IEEE half: round to nearest even, overflow to infinity, NaN to a quiet NaN ---
TORCHWAN_HD uint16_t float_to_half(float value) {
  const uint32_t word = bits_of(value);
  const uint32_t sign = (word >> 16) & 0x8000u;
  const uint32_t magnitude = word & kAbsMask;
  // Below 2^-14 the half is subnormal with spacing 2^-24, which is the float spacing at 0.5:
  // adding 0.5 lets the float adder round to that grid, and the low bits are the half mantissa.
  const uint32_t subnormal = bits_of(float_from_bits(magnitude) + 0.5f) - 0x3F000000u;
  // Normal: rebias the exponent, round away the 13 dropped mantissa bits to nearest even.
  const uint32_t normal = (magnitude - 0x38000000u + 0xFFFu + ((magnitude >> 13) & 1u)) >> 13;
  uint32_t result = magnitude < 0x38800000u ? subnormal : normal;
  result = magnitude >= 0x477FF000u ? 0x7C00u : result;  // rounds to 65536 or more: infinity
  result = magnitude > kInfinityBits ? 0x7E00u : result;
  return static_cast<uint16_t>(sign | result);
}

TORCHWAN_HD float half_to_float(uint16_t half) {
  const uint32_t sign = static_cast<uint32_t>(half & 0x8000u) << 16;
  const uint32_t exponent = (half >> 10) & 0x1Fu;
  const uint32_t mantissa = half & 0x3FFu;
  // Subnormal halves are mantissa * 2^-24, exact in float.
  const float subnormal = static_cast<float>(mantissa) * 0x1p-24f;
  const uint32_t normal = ((exponent + 112u) << 23) | (mantissa << 13);
  const uint32_t special = 0x7F800000u | (mantissa << 13);  // Inf or NaN
  uint32_t magnitude = exponent == 0 ? bits_of(subnormal) : normal;
  magnitude = exponent == 0x1Fu ? special : magnitude;
  return float_from_bits(sign | magnitude);
}

// --- bfloat16: the upper half of a float, round to nearest even, NaN kept quiet ---
TORCHWAN_HD uint16_t float_to_bfloat16(float value) {
  const uint32_t word = bits_of(value);
  const uint32_t rounded = (word + 0x7FFFu + ((word >> 16) & 1u)) >> 16;
  const bool is_nan = (word & kAbsMask) > kInfinityBits;
  return static_cast<uint16_t>(is_nan ? ((word >> 16) | 0x0040u) : rounded);
}

TORCHWAN_HD float bfloat16_to_float(uint16_t value) {
  return float_from_bits(static_cast<uint32_t>(value) << 16);
}

// --- float8 e4m3fn: 4 exponent bits (bias 7), 3 mantissa bits, no infinity, NaN = S.1111.111 ---
constexpr float kE4M3Max = 448.0f;

// Magnitude code of a finite |value| <= 448, round to nearest even. Split from float_to_e4m3 so
// that the codec loops, whose inputs are already clamped, carry no saturation selects (GCC does not
// vectorise the loop with them once it knows the clamped range).
TORCHWAN_HD uint32_t e4m3_magnitude_code(uint32_t magnitude) {
  // Below 2^-6 the code is subnormal with spacing 2^-9, the float spacing at 2^14.
  const uint32_t subnormal = bits_of(float_from_bits(magnitude) + 16384.0f) - 0x46800000u;
  const uint32_t normal = (magnitude - 0x3C000000u + 0x7FFFFu + ((magnitude >> 20) & 1u)) >> 20;
  return magnitude < 0x3C800000u ? subnormal : normal;
}

// For a finite value already clamped to [-448, 448].
TORCHWAN_HD uint8_t clamped_float_to_e4m3(float value) {
  const uint32_t word = bits_of(value);
  return static_cast<uint8_t>(((word >> 24) & 0x80u) | e4m3_magnitude_code(word & kAbsMask));
}

// Round to nearest even, saturating: magnitudes of 448 and above (Inf included) give +-448, NaN
// gives 0x7F with the sign.
TORCHWAN_HD uint8_t float_to_e4m3(float value) {
  const uint32_t word = bits_of(value);
  const uint32_t sign = (word >> 24) & 0x80u;
  const uint32_t magnitude = word & kAbsMask;
  uint32_t result = e4m3_magnitude_code(magnitude);
  result = magnitude >= 0x43E00000u ? 0x7Eu : result;  // 448 and above saturate
  result = magnitude > kInfinityBits ? 0x7Fu : result;
  return static_cast<uint8_t>(sign | result);
}

TORCHWAN_HD float e4m3_to_float(uint8_t code) {
  const uint32_t sign = static_cast<uint32_t>(code & 0x80u) << 24;
  const uint32_t exponent = (code >> 3) & 0xFu;
  const uint32_t mantissa = code & 0x7u;
  const float subnormal = static_cast<float>(mantissa) * 0x1p-9f;
  const uint32_t normal = ((exponent + 120u) << 23) | (mantissa << 20);
  uint32_t magnitude = exponent == 0 ? bits_of(subnormal) : normal;
  magnitude = (code & 0x7Fu) == 0x7Fu ? kCanonicalNaNBits : magnitude;
  return float_from_bits(sign | magnitude);
}

}  // namespace torchwan::compression::math
