// Gradient compression codecs, CPU reference implementation (see cuda_codec.h for the GPU one;
// both produce identical bytes). Every payload starts with the header of wire_format.h.
//
//   std::vector<uint8_t> buffer(encoded_size(config, grad.size()));
//   encode_with_error_feedback(config, grad, residual, buffer);   // residual updated in place
//   ... send buffer ...
//   decode_accumulate(received, sum);                              // sum += decode(received)
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>

#include "csrc/compression/codec_types.h"
#include "csrc/compression/wire_format.h"

namespace torchwan::compression {

// The header fields `config` produces for `element_count` elements; throws CompressionError for
// invalid parameters (unknown codec, bad block size, top-k fraction outside (0, 1], too many
// elements, stochastic rounding on a codec other than int8).
ResolvedParams resolve(const CodecConfig& config, size_t element_count);

// What an encode of `element_count` elements writes: the resolved parameters, the layout and the
// header. Throws CompressionError as resolve does, or when `capacity` bytes cannot hold it.
// Shared by the CPU and CUDA entry points.
struct EncodePlan {
  ResolvedParams params{};
  Layout layout;
  Header header;
};
EncodePlan plan_encode(const CodecConfig& config, size_t element_count, size_t capacity);

// Exact size in bytes of the payload (header included) that encode writes.
size_t encoded_size(const CodecConfig& config, size_t element_count);

// Encodes `input` into the front of `output` (at least encoded_size bytes); returns the bytes
// written.
size_t encode(const CodecConfig& config, std::span<const float> input, std::span<uint8_t> output);

// Error feedback fused into one pass: encodes t = gradient + residual and sets
// residual = t - decode(payload), element by element in float, so what the codec loses this step
// is added back the next. `residual` has gradient.size() elements (start it at zero).
size_t encode_with_error_feedback(const CodecConfig& config, std::span<const float> gradient,
                                  std::span<float> residual, std::span<uint8_t> output);

// Validates the header against payload.size() and returns it (no payload bytes read).
Header inspect(std::span<const uint8_t> payload);

// output = decode(payload); output.size() must equal the payload's element count.
void decode(std::span<const uint8_t> payload, std::span<float> output);

// accumulator += decode(payload), element by element (one float addition each).
void decode_accumulate(std::span<const uint8_t> payload, std::span<float> accumulator);

// accumulator += elements [first, first + accumulator.size()) of decode(payload): the same
// additions decode_accumulate makes for those elements, so a caller can sum several payloads
// tile by tile while its tile stays in cache. For the cast and block codecs (fp16, bf16, int8,
// fp8); block codecs need `first` to be a multiple of the block size.
void decode_accumulate_range(std::span<const uint8_t> payload, size_t first,
                             std::span<float> accumulator);

}  // namespace torchwan::compression
