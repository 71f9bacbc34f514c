// Turning a caller's CodecConfig into header parameters; shared by the CPU and CUDA entry points.
#include <cmath>

#include "csrc/compression/codec.h"

namespace torchwan::compression {

ResolvedParams resolve(const CodecConfig& config, size_t element_count) {
  ResolvedParams params{config.codec, 0, 0, config.stochastic_rounding};
  switch (config.codec) {
    case Codec::kInt8Block:
    case Codec::kFloat8Block:
    case Codec::kSignBlock:
      params.block_size = requested_block_size(config);
      break;
    case Codec::kTopK: {
      const double fraction = config.topk_fraction;
      if (!(fraction > 0.0 && fraction <= 1.0)) {
        throw CompressionError("torchwan compression: top-k fraction " + std::to_string(fraction) +
                               " is outside (0, 1]");
      }
      if (element_count > 0) {
        const double wanted = std::ceil(fraction * static_cast<double>(element_count));
        const uint64_t k = static_cast<uint64_t>(wanted);
        params.aux = k < 1 ? 1 : (k > element_count ? element_count : k);
      }
      break;
    }
    default:
      break;
  }
  if (params.stochastic && config.codec != Codec::kInt8Block) {
    throw CompressionError(std::string("torchwan compression: stochastic rounding is only "
                                       "available for int8_block, not ") +
                           codec_name(config.codec));
  }
  // Validates the codec, block size and element count.
  compute_layout(params.codec, params.block_size, element_count, params.aux);
  return params;
}

size_t encoded_size(const CodecConfig& config, size_t element_count) {
  const ResolvedParams params = resolve(config, element_count);
  return compute_layout(params.codec, params.block_size, element_count, params.aux).total_size;
}

Header inspect(std::span<const uint8_t> payload) {
  return parse_header(payload.data(), payload.size());
}

}  // namespace torchwan::compression
