// CPU entry points: argument checks, header, then the codec loop.
#include "csrc/compression/codec.h"

#include <string>

#include "csrc/compression/cpu_kernels.h"

namespace torchwan::compression {
namespace {

[[noreturn]] void fail(const std::string& what) {
  throw CompressionError("torchwan compression: " + what);
}

size_t encode_impl(const CodecConfig& config, std::span<const float> input, float* residual,
                   std::span<uint8_t> output) {
  const size_t count = input.size();
  const ResolvedParams params = resolve(config, count);
  const Layout layout = compute_layout(params.codec, params.block_size, count, params.aux);
  if (output.size() < layout.total_size) {
    fail("output buffer of " + std::to_string(output.size()) + " bytes is smaller than the " +
         std::to_string(layout.total_size) + " bytes " + codec_name(params.codec) + " needs");
  }
  uint8_t* payload = output.data();
  Header header;
  header.codec = params.codec;
  header.flags = params.stochastic ? kFlagStochastic : 0;
  header.block_size = params.block_size;
  header.element_count = count;
  header.aux = params.aux;
  header.payload_length = layout.total_size - kHeaderSize;
  write_header(header, payload);
  switch (params.codec) {
    case Codec::kFloat16:
    case Codec::kBFloat16:
      cpu::kernels().encode_cast(params.codec, input.data(), residual, count, payload, layout);
      break;
    case Codec::kInt8Block:
    case Codec::kFloat8Block:
      cpu::kernels().encode_block(params, config.seed, input.data(), residual, count, payload,
                                  layout);
      break;
    case Codec::kSignBlock:
      cpu::kernels().encode_sign(params.block_size, input.data(), residual, count, payload, layout);
      break;
    case Codec::kTopK:
      cpu::encode_topk(params.aux, input.data(), residual, count, payload, layout);
      break;
  }
  return layout.total_size;
}

// output = (or, accumulating, +=) elements [first, first + output.size()) of the payload behind
// `header`, a range the caller has checked. The kernels address codes and scales through the
// layout, so shifting its offsets to element `first` makes them decode from there. Only the cast
// and block codecs (the latter from a block boundary) take a range; sign and top-k payloads are
// decoded whole (decode_accumulate_range refuses them).
void decode_elements(const Header& header, const uint8_t* payload, size_t first,
                     std::span<float> output, bool accumulate) {
  Layout layout = compute_layout(header.codec, header.block_size, header.element_count, header.aux);
  const size_t count = output.size();
  switch (header.codec) {
    case Codec::kFloat16:
    case Codec::kBFloat16:
      layout.data_offset += first * sizeof(uint16_t);
      cpu::kernels().decode_cast(header.codec, payload, layout, count, output.data(), accumulate);
      return;
    case Codec::kInt8Block:
    case Codec::kFloat8Block:
      if (first % header.block_size != 0) {
        fail("range start " + std::to_string(first) + " is not a multiple of the block size " +
             std::to_string(header.block_size));
      }
      layout.scales_offset += first / header.block_size * sizeof(float);
      layout.data_offset += first;
      cpu::kernels().decode_block(header.codec, header.block_size, payload, layout, count,
                                  output.data(), accumulate);
      return;
    case Codec::kSignBlock:
      cpu::kernels().decode_sign(header.block_size, payload, layout, count, output.data(),
                                 accumulate);
      return;
    case Codec::kTopK:
      cpu::decode_topk(header.aux, payload, layout, count, output.data(), accumulate);
      return;
  }
}

void decode_impl(std::span<const uint8_t> payload, std::span<float> output, bool accumulate) {
  const Header header = parse_header(payload.data(), payload.size());
  if (header.element_count != output.size()) {
    fail("payload holds " + std::to_string(header.element_count) + " elements, output has " +
         std::to_string(output.size()));
  }
  decode_elements(header, payload.data(), 0, output, accumulate);
}

}  // namespace

size_t encode(const CodecConfig& config, std::span<const float> input, std::span<uint8_t> output) {
  return encode_impl(config, input, nullptr, output);
}

size_t encode_with_error_feedback(const CodecConfig& config, std::span<const float> gradient,
                                  std::span<float> residual, std::span<uint8_t> output) {
  if (residual.size() != gradient.size()) {
    fail("residual has " + std::to_string(residual.size()) + " elements, gradient has " +
         std::to_string(gradient.size()));
  }
  return encode_impl(config, gradient, residual.data(), output);
}

void decode(std::span<const uint8_t> payload, std::span<float> output) {
  decode_impl(payload, output, false);
}

void decode_accumulate_range(std::span<const uint8_t> payload, size_t first,
                             std::span<float> accumulator) {
  const Header header = parse_header(payload.data(), payload.size());
  const size_t count = accumulator.size();
  if (first > header.element_count || count > header.element_count - first) {
    fail("range of " + std::to_string(count) + " elements from " + std::to_string(first) +
         " is outside a payload of " + std::to_string(header.element_count));
  }
  if (header.codec == Codec::kSignBlock || header.codec == Codec::kTopK) {
    fail(std::string("decoding a range is not supported for ") + codec_name(header.codec));
  }
  decode_elements(header, payload.data(), first, accumulator, true);
}

void decode_accumulate(std::span<const uint8_t> payload, std::span<float> accumulator) {
  decode_impl(payload, accumulator, true);
}

}  // namespace torchwan::compression
