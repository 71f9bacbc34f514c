// fp16 / bf16 casts on the CPU. Branch-free conversions (scalar_math.h) so the loops vectorise.
#include <cstring>

#include "csrc/compression/cpu_isa_kernels.h"
#include "csrc/compression/scalar_math.h"

namespace torchwan::compression::cpu::TORCHWAN_CPU_ISA {
namespace {

template <bool kBFloat16>
uint16_t to_narrow(float value) {
  return kBFloat16 ? math::float_to_bfloat16(value) : math::float_to_half(value);
}

template <bool kBFloat16>
float from_narrow(uint16_t value) {
  return kBFloat16 ? math::bfloat16_to_float(value) : math::half_to_float(value);
}

template <bool kBFloat16, bool kResidual>
void encode_loop(const float* __restrict input, float* __restrict residual, size_t count,
                 uint8_t* __restrict data) {
  for (size_t i = 0; i < count; ++i) {
    const float value = kResidual ? math::add_residual(input[i], residual[i]) : input[i];
    const uint16_t code = to_narrow<kBFloat16>(value);
    std::memcpy(data + 2 * i, &code, 2);
    if constexpr (kResidual) residual[i] = value - from_narrow<kBFloat16>(code);
  }
}

template <bool kBFloat16, bool kAccumulate>
void decode_loop(const uint8_t* __restrict data, size_t count, float* __restrict output) {
  for (size_t i = 0; i < count; ++i) {
    uint16_t code;
    std::memcpy(&code, data + 2 * i, 2);
    const float value = from_narrow<kBFloat16>(code);
    output[i] = kAccumulate ? output[i] + value : value;
  }
}

}  // namespace

void encode_cast(const ResolvedParams& params, uint64_t /*seed*/, const float* input,
                 float* residual, size_t count, uint8_t* payload, const Layout& layout) {
  uint8_t* data = payload + layout.data_offset;
  const bool bf16 = params.codec == Codec::kBFloat16;
  if (residual == nullptr) {
    bf16 ? encode_loop<true, false>(input, nullptr, count, data)
         : encode_loop<false, false>(input, nullptr, count, data);
  } else {
    bf16 ? encode_loop<true, true>(input, residual, count, data)
         : encode_loop<false, true>(input, residual, count, data);
  }
}

void decode_cast(const Header& header, const uint8_t* payload, const Layout& layout, size_t count,
                 float* output, bool accumulate) {
  const uint8_t* data = payload + layout.data_offset;
  const bool bf16 = header.codec == Codec::kBFloat16;
  if (accumulate) {
    bf16 ? decode_loop<true, true>(data, count, output)
         : decode_loop<false, true>(data, count, output);
  } else {
    bf16 ? decode_loop<true, false>(data, count, output)
         : decode_loop<false, false>(data, count, output);
  }
}

}  // namespace torchwan::compression::cpu::TORCHWAN_CPU_ISA
