// Host-side launchers of the CUDA codec kernels (defined in the .cu files). Internal: the entry
// points in cuda_codec.cc validate arguments and write the header first.
#pragma once

#include <cuda_runtime_api.h>

#include <cstddef>
#include <cstdint>

#include "csrc/compression/wire_format.h"

namespace torchwan::compression {

// One codec's launchers in the codec table's uniform shape (codec_table.h): encode queues the
// kernels that fill the sections after the header, decode those that read them.
struct CudaKernels {
  void (*encode)(const ResolvedParams& params, uint64_t seed, const float* input, float* residual,
                 size_t count, uint8_t* payload, const Layout& layout, cudaStream_t stream);
  void (*decode)(const Header& header, const uint8_t* payload, const Layout& layout, size_t count,
                 float* output, bool accumulate, cudaStream_t stream);
};

}  // namespace torchwan::compression

namespace torchwan::compression::cuda {

void launch_write_header(const uint8_t (&header)[kHeaderSize], uint8_t* payload,
                         cudaStream_t stream);

// Every launcher in the uniform shapes of CudaKernels.
void launch_encode_cast(const ResolvedParams& params, uint64_t seed, const float* input,
                        float* residual, size_t count, uint8_t* payload, const Layout& layout,
                        cudaStream_t stream);
void launch_decode_cast(const Header& header, const uint8_t* payload, const Layout& layout,
                        size_t count, float* output, bool accumulate, cudaStream_t stream);

void launch_encode_block(const ResolvedParams& params, uint64_t seed, const float* input,
                         float* residual, size_t count, uint8_t* payload, const Layout& layout,
                         cudaStream_t stream);
void launch_decode_block(const Header& header, const uint8_t* payload, const Layout& layout,
                         size_t count, float* output, bool accumulate, cudaStream_t stream);

void launch_encode_sign(const ResolvedParams& params, uint64_t seed, const float* input,
                        float* residual, size_t count, uint8_t* payload, const Layout& layout,
                        cudaStream_t stream);
void launch_decode_sign(const Header& header, const uint8_t* payload, const Layout& layout,
                        size_t count, float* output, bool accumulate, cudaStream_t stream);

// Synchronises `stream` (histograms and chunk counts are read back to the host).
void run_encode_topk(const ResolvedParams& params, uint64_t seed, const float* input,
                     float* residual, size_t count, uint8_t* payload, const Layout& layout,
                     cudaStream_t stream);
// Validates the indices first (synchronising `stream`); throws CompressionError if they are out of
// range or not ascending, before anything is written.
void run_decode_topk(const Header& header, const uint8_t* payload, const Layout& layout,
                     size_t count, float* output, bool accumulate, cudaStream_t stream);

// Grid size for a grid-stride loop over `work` items with `threads` threads per CTA.
unsigned grid_for(size_t work, unsigned threads);

}  // namespace torchwan::compression::cuda
