// Gradient compression codecs on the GPU: the same API and the same bytes as codec.h, for device
// pointers, queued on a CUDA stream. Only present when the library was built with CUDA
// (TORCHWAN_COMPRESSION_HAVE_CUDA is defined).
//
// Encoding is asynchronous except for top-k, whose threshold search reads small histograms back
// to the host (it synchronises the stream). Decoding synchronises once to read and validate the
// header (and, for top-k, the indices) before any kernel touches the payload.
// Payload pointers must be 4-byte aligned (cudaMalloc gives 256).
#pragma once

#include <cuda_runtime_api.h>

#include <cstddef>
#include <cstdint>

#include "csrc/compression/codec_types.h"
#include "csrc/compression/wire_format.h"

namespace torchwan::compression::cuda {

// Whether a CUDA device can be used (false without a driver or a GPU; never throws).
bool device_available();

size_t encode(const CodecConfig& config, const float* input, size_t count, uint8_t* output,
              size_t output_capacity, cudaStream_t stream);

// residual (count elements, device) is updated in place as in codec.h.
size_t encode_with_error_feedback(const CodecConfig& config, const float* gradient, float* residual,
                                  size_t count, uint8_t* output, size_t output_capacity,
                                  cudaStream_t stream);

void decode(const uint8_t* payload, size_t payload_size, float* output, size_t count,
            cudaStream_t stream);

void decode_accumulate(const uint8_t* payload, size_t payload_size, float* accumulator,
                       size_t count, cudaStream_t stream);

}  // namespace torchwan::compression::cuda
