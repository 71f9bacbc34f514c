// Top-k sparsification on the CPU: radix select of the threshold (topk_select.h), then one pass
// in index order that writes the kept (index, value) pairs already sorted by index.
#include <array>
#include <cstring>
#include <string>

#include "csrc/compression/cpu_kernels.h"
#include "csrc/compression/scalar_math.h"
#include "csrc/compression/topk_select.h"

namespace torchwan::compression::cpu {

void encode_topk(const ResolvedParams& params, uint64_t /*seed*/, const float* input,
                 float* residual, size_t count, uint8_t* payload, const Layout& layout) {
  const uint64_t k = params.aux;
  const float* source = input;
  if (residual != nullptr) {
    // Error feedback: the candidates are t = input + residual, built in the residual buffer.
    for (size_t i = 0; i < count; ++i) residual[i] = math::add_residual(input[i], residual[i]);
    source = residual;
  }
  if (count == 0) return;
  RadixSelect select(k);
  std::array<uint64_t, kTopKMaxBins> histogram;
  for (const RadixPass& pass : kTopKPasses) {
    const uint32_t bins = uint32_t{1} << pass.bits;
    histogram.fill(0);
    for (size_t i = 0; i < count; ++i) {
      const uint32_t key = math::magnitude_bits(source[i]);
      if (select.matches(key)) ++histogram[(key >> pass.shift) & (bins - 1)];
    }
    select.consume(pass, histogram.data(), bins);
  }
  const uint32_t threshold = select.threshold();
  uint64_t ties_left = select.ties();
  uint8_t* indices = payload + layout.indices_offset;
  uint8_t* values = payload + layout.values_offset;
  size_t written = 0;
  for (size_t i = 0; i < count; ++i) {
    const float t = source[i];
    const uint32_t key = math::magnitude_bits(t);
    const bool tie = key == threshold && ties_left > 0;
    if (key > threshold || tie) {
      ties_left -= tie ? 1 : 0;
      const uint32_t index = static_cast<uint32_t>(i);
      std::memcpy(indices + 4 * written, &index, 4);
      std::memcpy(values + 4 * written, &t, 4);
      ++written;
      if (residual != nullptr) residual[i] = t - t;  // what decode loses: nothing (NaN stays NaN)
    }
  }
}

void decode_topk(const Header& header, const uint8_t* payload, const Layout& layout, size_t count,
                 float* output, bool accumulate) {
  const uint64_t k = header.aux;
  const uint8_t* indices = payload + layout.indices_offset;
  const uint8_t* values = payload + layout.values_offset;
  // Validate every index before writing anything: a corrupted payload must not scribble.
  uint64_t previous = 0;
  for (uint64_t j = 0; j < k; ++j) {
    uint32_t index;
    std::memcpy(&index, indices + 4 * j, 4);
    if (index >= count || (j > 0 && index <= previous)) {
      throw CompressionError("torchwan compression: top-k index " + std::to_string(index) +
                             " at position " + std::to_string(j) +
                             " is out of range or not ascending (" + std::to_string(count) +
                             " elements)");
    }
    previous = index;
  }
  if (!accumulate && count > 0) std::memset(output, 0, count * sizeof(float));
  for (uint64_t j = 0; j < k; ++j) {
    uint32_t index;
    float value;
    std::memcpy(&index, indices + 4 * j, 4);
    std::memcpy(&value, values + 4 * j, 4);
    output[index] = accumulate ? output[index] + value : value;
  }
}

}  // namespace torchwan::compression::cpu
