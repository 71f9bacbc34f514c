// The rows of the codec table. A new codec is a row here, its wire id in codec_types.h and its
// kernels (CPU in cpu_*.cc, CUDA in cuda_*.cu); see docs/compression.md, "Adding a codec".
#include "csrc/compression/codec_table.h"

#include <iterator>

#if defined(TORCHWAN_COMPRESSION_HAVE_CUDA)
#include "csrc/compression/cuda_kernels.h"
#endif

namespace torchwan::compression {
namespace {

#if defined(TORCHWAN_COMPRESSION_HAVE_CUDA)
constexpr CudaKernels kCudaCast = {cuda::launch_encode_cast, cuda::launch_decode_cast};
constexpr CudaKernels kCudaBlock = {cuda::launch_encode_block, cuda::launch_decode_block};
constexpr CudaKernels kCudaSign = {cuda::launch_encode_sign, cuda::launch_decode_sign};
constexpr CudaKernels kCudaTopK = {cuda::run_encode_topk, cuda::run_decode_topk};
#define TORCHWAN_CUDA_KERNELS(kernels) (&(kernels))
#else
#define TORCHWAN_CUDA_KERNELS(kernels) nullptr
#endif

using cpu::KernelTable;

// In wire-id order, so describe() can index it.
constexpr CodecDescriptor kCodecs[] = {
    {Codec::kFloat16, "fp16", nullptr, Sections::kCodes, 16, false, false, true,
     &KernelTable::encode_cast, &KernelTable::decode_cast, TORCHWAN_CUDA_KERNELS(kCudaCast),
     "IEEE half, round to nearest even (2x)"},
    {Codec::kBFloat16, "bf16", nullptr, Sections::kCodes, 16, false, false, true,
     &KernelTable::encode_cast, &KernelTable::decode_cast, TORCHWAN_CUDA_KERNELS(kCudaCast),
     "bfloat16, round to nearest even (2x)"},
    {Codec::kInt8Block, "int8", "int8_block", Sections::kScaledCodes, 8, false, true, true,
     &KernelTable::encode_block, &KernelTable::decode_block, TORCHWAN_CUDA_KERNELS(kCudaBlock),
     "int8 codes, one absmax/127 scale per block (3.94x at block 256)"},
    {Codec::kFloat8Block, "fp8", "fp8_e4m3_block", Sections::kScaledCodes, 8, false, false, true,
     &KernelTable::encode_block, &KernelTable::decode_block, TORCHWAN_CUDA_KERNELS(kCudaBlock),
     "float8 e4m3 codes (saturating), one absmax/448 scale per block (3.94x)"},
    {Codec::kSignBlock, "sign", "sign_block", Sections::kScaledCodes, 1, true, false, false,
     &KernelTable::encode_sign, &KernelTable::decode_sign, TORCHWAN_CUDA_KERNELS(kCudaSign),
     "one sign bit per element, one mean-|x| scale per block (28x); needs error feedback"},
    {Codec::kTopK, "topk", nullptr, Sections::kSparse, 0, true, false, false,
     &KernelTable::encode_topk, &KernelTable::decode_topk, TORCHWAN_CUDA_KERNELS(kCudaTopK),
     "the largest magnitudes as (index, fp32 value) pairs; needs error feedback"},
};
#undef TORCHWAN_CUDA_KERNELS

constexpr bool in_wire_order() {
  for (size_t i = 0; i < std::size(kCodecs); ++i) {
    if (static_cast<size_t>(kCodecs[i].codec) != i + 1) return false;
  }
  return true;
}
static_assert(in_wire_order(), "kCodecs must list wire ids 1, 2, ... in order");

}  // namespace

const CodecDescriptor* codec_table_begin() { return std::begin(kCodecs); }
const CodecDescriptor* codec_table_end() { return std::end(kCodecs); }

const CodecDescriptor& describe(Codec codec) {
  const auto id = static_cast<size_t>(codec);
  if (id < 1 || id > std::size(kCodecs)) {
    throw CompressionError("torchwan compression: unknown codec " + std::to_string(id));
  }
  return kCodecs[id - 1];
}

const CodecDescriptor* find_codec(std::string_view name) {
  for (const CodecDescriptor& row : kCodecs) {
    if (name == row.name || (row.alias != nullptr && name == row.alias)) return &row;
  }
  return nullptr;
}

std::string codec_names(bool stateless_only) {
  std::string names;
  for (const CodecDescriptor& row : kCodecs) {
    if (stateless_only && row.needs_error_feedback) continue;
    if (!names.empty()) names += ", ";
    names += row.name;
  }
  return names;
}

const char* codec_name(Codec codec) {
  const auto id = static_cast<size_t>(codec);
  return id >= 1 && id <= std::size(kCodecs) ? kCodecs[id - 1].name : "unknown";
}

}  // namespace torchwan::compression
