// The CPU codec loops, one file per codec family. Internal to the library: codec.cc validates
// sizes and writes headers, these only fill or read the sections described by a Layout.
//
// `residual` is null for a plain encode; otherwise each element is encoded as
// t = input + residual and residual is set to t - decode(code) (error feedback).
#pragma once

#include <cstddef>
#include <cstdint>
#include <vector>

#include "csrc/compression/wire_format.h"

namespace torchwan::compression {

// Uniform kernel signatures, so the entry points call every codec alike (the codec table names
// them). `params` and `header` carry the codec, block size and top-k count; `seed` feeds
// stochastic rounding.
using CpuEncode = void (*)(const ResolvedParams& params, uint64_t seed, const float* input,
                           float* residual, size_t count, uint8_t* payload, const Layout& layout);
using CpuDecode = void (*)(const Header& header, const uint8_t* payload, const Layout& layout,
                           size_t count, float* output, bool accumulate);

}  // namespace torchwan::compression

namespace torchwan::compression::cpu {

// The vectorised loops are compiled once per instruction set (cpu_isa_kernels.h); kernels()
// picks the best one this CPU runs. Every variant gives identical bytes: the operations are the
// same IEEE ones, only the vector width differs. A codec's row in the codec table names its two
// members.
struct KernelTable {
  CpuEncode encode_cast;
  CpuDecode decode_cast;
  CpuEncode encode_block;
  CpuDecode decode_block;
  CpuEncode encode_sign;
  CpuDecode decode_sign;
  CpuEncode encode_topk;
  CpuDecode decode_topk;
};

const KernelTable& kernels();
// Every variant this CPU can run, baseline first (for tests that compare them).
std::vector<const KernelTable*> runnable_kernels();

namespace baseline {
const KernelTable& table();
}  // namespace baseline
namespace avx2 {
const KernelTable& table();  // only built on x86-64
}  // namespace avx2

// Top-k is dominated by histogram passes that do not vectorise: one variant, in every table.
void encode_topk(const ResolvedParams& params, uint64_t seed, const float* input, float* residual,
                 size_t count, uint8_t* payload, const Layout& layout);
// Throws CompressionError (before writing anything) if an index is out of range or the indices
// are not strictly ascending.
void decode_topk(const Header& header, const uint8_t* payload, const Layout& layout, size_t count,
                 float* output, bool accumulate);

}  // namespace torchwan::compression::cpu
