// Declarations of the per-instruction-set codec loops. The files that define them (cpu_cast.cc,
// cpu_block.cc, cpu_sign.cc, cpu_table.cc) are compiled once per instruction set, each time with
// TORCHWAN_CPU_ISA naming the namespace (baseline, avx2) so the copies do not collide. Everything
// else they use is internal or always inlined, so no AVX2 code can leak into the baseline copy.
#pragma once

#include "csrc/compression/cpu_kernels.h"

#ifndef TORCHWAN_CPU_ISA
#error "compile this file through the TORCHWAN_CPU_ISA object libraries (CMakeLists.txt)"
#endif

namespace torchwan::compression::cpu::TORCHWAN_CPU_ISA {

// In the uniform shapes of the codec table (CpuEncode, CpuDecode).
void encode_cast(const ResolvedParams& params, uint64_t seed, const float* input, float* residual,
                 size_t count, uint8_t* payload, const Layout& layout);
void decode_cast(const Header& header, const uint8_t* payload, const Layout& layout, size_t count,
                 float* output, bool accumulate);
void encode_block(const ResolvedParams& params, uint64_t seed, const float* input, float* residual,
                  size_t count, uint8_t* payload, const Layout& layout);
void decode_block(const Header& header, const uint8_t* payload, const Layout& layout, size_t count,
                  float* output, bool accumulate);
void encode_sign(const ResolvedParams& params, uint64_t seed, const float* input, float* residual,
                 size_t count, uint8_t* payload, const Layout& layout);
void decode_sign(const Header& header, const uint8_t* payload, const Layout& layout, size_t count,
                 float* output, bool accumulate);

}  // namespace torchwan::compression::cpu::TORCHWAN_CPU_ISA
