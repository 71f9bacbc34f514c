// CPU entry points: argument checks, header, then the codec loop.
#include "csrc/compression/codec.h"

#include <string>

#include "csrc/compression/codec_table.h"

namespace torchwan::compression {
namespace {

[[noreturn]] void fail(const std::string& what) {
  throw CompressionError("torchwan compression: " + what);
}

size_t encode_impl(const CodecConfig& config, std::span<const float> input, float* residual,
                   std::span<uint8_t> output) {
  const EncodePlan plan = plan_encode(config, input.size(), output.size());
  write_header(plan.header, output.data());
  (cpu::kernels().*describe(plan.params.codec).cpu_encode)(
      plan.params, config.seed, input.data(), residual, input.size(), output.data(), plan.layout);
  return plan.layout.total_size;
}

// output = (or, accumulating, +=) elements [first, first + output.size()) of the payload behind
// `header`, a range the caller has checked. The kernels address codes and scales through the
// layout, so shifting its offsets to element `first` makes them decode from there. Only codecs
// with range_decode take a range, blocked ones from a block boundary; the others are decoded
// whole (decode_accumulate_range refuses them).
void decode_elements(const Header& header, const uint8_t* payload, size_t first,
                     std::span<float> output, bool accumulate) {
  const CodecDescriptor& descriptor = describe(header.codec);
  Layout layout = compute_layout(header.codec, header.block_size, header.element_count, header.aux);
  if (first != 0) {
    if (descriptor.blocked()) {
      if (first % header.block_size != 0) {
        fail("range start " + std::to_string(first) + " is not a multiple of the block size " +
             std::to_string(header.block_size));
      }
      layout.scales_offset += first / header.block_size * sizeof(float);
    }
    layout.data_offset += first * descriptor.code_bits / 8;
  }
  (cpu::kernels().*descriptor.cpu_decode)(header, payload, layout, output.size(), output.data(),
                                          accumulate);
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
  if (!describe(header.codec).range_decode) {
    fail(std::string("decoding a range is not supported for ") + codec_name(header.codec));
  }
  decode_elements(header, payload.data(), first, accumulator, true);
}

void decode_accumulate(std::span<const uint8_t> payload, std::span<float> accumulator) {
  decode_impl(payload, accumulator, true);
}

}  // namespace torchwan::compression
