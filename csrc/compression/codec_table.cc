// The rows of the codec table. A new codec is a row here, its wire id in codec_types.h and its
// kernels (CPU in cpu_*.cc, CUDA in cuda_*.cu); see docs/compression.md, "Adding a codec".
#include "csrc/compression/codec_table.h"

#include <iterator>

#include "csrc/compression/cpu_kernels.h"

#if defined(TORCHWAN_COMPRESSION_HAVE_CUDA)
#include "csrc/compression/cuda_kernels.h"
#endif

namespace torchwan::compression {
namespace {

// CPU kernels in the table's uniform shape. The vectorised ones go through cpu::kernels(), which
// picks the instruction set this CPU runs.
void cpu_encode_cast(const ResolvedParams& params, uint64_t /*seed*/, const float* input,
                     float* residual, size_t count, uint8_t* payload, const Layout& layout) {
  cpu::kernels().encode_cast(params.codec, input, residual, count, payload, layout);
}
void cpu_decode_cast(const Header& header, const uint8_t* payload, const Layout& layout,
                     size_t count, float* output, bool accumulate) {
  cpu::kernels().decode_cast(header.codec, payload, layout, count, output, accumulate);
}
void cpu_encode_block(const ResolvedParams& params, uint64_t seed, const float* input,
                      float* residual, size_t count, uint8_t* payload, const Layout& layout) {
  cpu::kernels().encode_block(params, seed, input, residual, count, payload, layout);
}
void cpu_decode_block(const Header& header, const uint8_t* payload, const Layout& layout,
                      size_t count, float* output, bool accumulate) {
  cpu::kernels().decode_block(header.codec, header.block_size, payload, layout, count, output,
                              accumulate);
}
void cpu_encode_sign(const ResolvedParams& params, uint64_t /*seed*/, const float* input,
                     float* residual, size_t count, uint8_t* payload, const Layout& layout) {
  cpu::kernels().encode_sign(params.block_size, input, residual, count, payload, layout);
}
void cpu_decode_sign(const Header& header, const uint8_t* payload, const Layout& layout,
                     size_t count, float* output, bool accumulate) {
  cpu::kernels().decode_sign(header.block_size, payload, layout, count, output, accumulate);
}
void cpu_encode_topk(const ResolvedParams& params, uint64_t /*seed*/, const float* input,
                     float* residual, size_t count, uint8_t* payload, const Layout& layout) {
  cpu::encode_topk(params.aux, input, residual, count, payload, layout);
}
void cpu_decode_topk(const Header& header, const uint8_t* payload, const Layout& layout,
                     size_t count, float* output, bool accumulate) {
  cpu::decode_topk(header.aux, payload, layout, count, output, accumulate);
}

#if defined(TORCHWAN_COMPRESSION_HAVE_CUDA)
constexpr CudaKernels kCudaCast = {
    [](const ResolvedParams& params, uint64_t, const float* input, float* residual, size_t count,
       uint8_t* payload, const Layout& layout, cudaStream_t stream) {
      cuda::launch_encode_cast(params.codec, input, residual, count, payload, layout, stream);
    },
    [](const Header& header, const uint8_t* payload, const Layout& layout, size_t count,
       float* output, bool accumulate, cudaStream_t stream) {
      cuda::launch_decode_cast(header.codec, payload, layout, count, output, accumulate, stream);
    }};
constexpr CudaKernels kCudaBlock = {
    [](const ResolvedParams& params, uint64_t seed, const float* input, float* residual,
       size_t count, uint8_t* payload, const Layout& layout, cudaStream_t stream) {
      cuda::launch_encode_block(params, seed, input, residual, count, payload, layout, stream);
    },
    [](const Header& header, const uint8_t* payload, const Layout& layout, size_t count,
       float* output, bool accumulate, cudaStream_t stream) {
      cuda::launch_decode_block(header.codec, header.block_size, payload, layout, count, output,
                                accumulate, stream);
    }};
constexpr CudaKernels kCudaSign = {
    [](const ResolvedParams& params, uint64_t, const float* input, float* residual, size_t count,
       uint8_t* payload, const Layout& layout, cudaStream_t stream) {
      cuda::launch_encode_sign(params.block_size, input, residual, count, payload, layout, stream);
    },
    [](const Header& header, const uint8_t* payload, const Layout& layout, size_t count,
       float* output, bool accumulate, cudaStream_t stream) {
      cuda::launch_decode_sign(header.block_size, payload, layout, count, output, accumulate,
                               stream);
    }};
constexpr CudaKernels kCudaTopK = {
    [](const ResolvedParams& params, uint64_t, const float* input, float* residual, size_t count,
       uint8_t* payload, const Layout& layout, cudaStream_t stream) {
      cuda::run_encode_topk(params.aux, input, residual, count, payload, layout, stream);
    },
    [](const Header& header, const uint8_t* payload, const Layout& layout, size_t count,
       float* output, bool accumulate, cudaStream_t stream) {
      cuda::run_decode_topk(header.aux, payload, layout, count, output, accumulate, stream);
    }};
#define TORCHWAN_CUDA_KERNELS(kernels) (&(kernels))
#else
#define TORCHWAN_CUDA_KERNELS(kernels) nullptr
#endif

// In wire-id order, so describe() can index it.
constexpr CodecDescriptor kCodecs[] = {
    {Codec::kFloat16, "fp16", nullptr, Sections::kCodes, 16, false, false, true, cpu_encode_cast,
     cpu_decode_cast, TORCHWAN_CUDA_KERNELS(kCudaCast), "IEEE half, round to nearest even (2x)"},
    {Codec::kBFloat16, "bf16", nullptr, Sections::kCodes, 16, false, false, true, cpu_encode_cast,
     cpu_decode_cast, TORCHWAN_CUDA_KERNELS(kCudaCast), "bfloat16, round to nearest even (2x)"},
    {Codec::kInt8Block, "int8", "int8_block", Sections::kScaledCodes, 8, false, true, true,
     cpu_encode_block, cpu_decode_block, TORCHWAN_CUDA_KERNELS(kCudaBlock),
     "int8 codes, one absmax/127 scale per block (3.94x at block 256)"},
    {Codec::kFloat8Block, "fp8", "fp8_e4m3_block", Sections::kScaledCodes, 8, false, false, true,
     cpu_encode_block, cpu_decode_block, TORCHWAN_CUDA_KERNELS(kCudaBlock),
     "float8 e4m3 codes (saturating), one absmax/448 scale per block (3.94x)"},
    {Codec::kSignBlock, "sign", "sign_block", Sections::kScaledCodes, 1, true, false, false,
     cpu_encode_sign, cpu_decode_sign, TORCHWAN_CUDA_KERNELS(kCudaSign),
     "one sign bit per element, one mean-|x| scale per block (28x); needs error feedback"},
    {Codec::kTopK, "topk", nullptr, Sections::kSparse, 0, true, false, false, cpu_encode_topk,
     cpu_decode_topk, TORCHWAN_CUDA_KERNELS(kCudaTopK),
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
