// Turning a caller's CodecConfig into header parameters; shared by the CPU and CUDA entry points.
#include <cmath>

#include "csrc/compression/codec.h"
#include "csrc/compression/codec_table.h"

namespace torchwan::compression {

ResolvedParams resolve(const CodecConfig& config, size_t element_count) {
  const CodecDescriptor& descriptor = describe(config.codec);
  ResolvedParams params{config.codec, 0, 0, config.stochastic_rounding};
  if (descriptor.blocked()) params.block_size = requested_block_size(config);
  if (descriptor.sections == Sections::kSparse) {
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
  }
  if (params.stochastic && !descriptor.stochastic_rounding) {
    throw CompressionError(std::string("torchwan compression: stochastic rounding is not "
                                       "available for ") +
                           descriptor.name);
  }
  // Validates the block size and element count.
  compute_layout(params.codec, params.block_size, element_count, params.aux);
  return params;
}

EncodePlan plan_encode(const CodecConfig& config, size_t element_count, size_t capacity) {
  EncodePlan plan;
  plan.params = resolve(config, element_count);
  plan.layout =
      compute_layout(plan.params.codec, plan.params.block_size, element_count, plan.params.aux);
  if (capacity < plan.layout.total_size) {
    throw CompressionError("torchwan compression: output buffer of " + std::to_string(capacity) +
                           " bytes is smaller than the " + std::to_string(plan.layout.total_size) +
                           " bytes " + codec_name(plan.params.codec) + " needs");
  }
  plan.header.codec = plan.params.codec;
  plan.header.flags = plan.params.stochastic ? kFlagStochastic : 0;
  plan.header.block_size = plan.params.block_size;
  plan.header.element_count = element_count;
  plan.header.aux = plan.params.aux;
  plan.header.payload_length = plan.layout.total_size - kHeaderSize;
  return plan;
}

size_t encoded_size(const CodecConfig& config, size_t element_count) {
  const ResolvedParams params = resolve(config, element_count);
  return compute_layout(params.codec, params.block_size, element_count, params.aux).total_size;
}

Header inspect(std::span<const uint8_t> payload) {
  return parse_header(payload.data(), payload.size());
}

}  // namespace torchwan::compression
