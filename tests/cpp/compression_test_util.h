// Helpers shared by the compression tests: deterministic data and vector-returning wrappers.
#pragma once

#include <cmath>
#include <cstdint>
#include <cstring>
#include <random>
#include <vector>

#include "csrc/compression/codec.h"
#include "csrc/compression/codec_table.h"

namespace torchwan::compression::testing {

// Normally distributed values with a per-block spread that varies over decades, so block scales
// differ, plus exact zeros and negative zeros sprinkled in.
inline std::vector<float> gradient_like(size_t count, uint32_t seed) {
  std::mt19937 generator(seed);
  std::normal_distribution<float> normal(0.0f, 1.0f);
  std::uniform_int_distribution<int> decade(-6, 3);
  std::vector<float> values(count);
  float spread = 1.0f;
  for (size_t i = 0; i < count; ++i) {
    if (i % 97 == 0) spread = std::pow(10.0f, static_cast<float>(decade(generator)));
    values[i] = normal(generator) * spread;
    if (i % 211 == 5) values[i] = 0.0f;
    if (i % 307 == 7) values[i] = -0.0f;
  }
  return values;
}

inline std::vector<uint8_t> encode_to_vector(const CodecConfig& config,
                                             const std::vector<float>& input) {
  std::vector<uint8_t> payload(encoded_size(config, input.size()));
  const size_t written = encode(config, input, payload);
  payload.resize(written);
  return payload;
}

inline std::vector<float> decode_to_vector(const std::vector<uint8_t>& payload) {
  std::vector<float> output(inspect(payload).element_count);
  decode(payload, output);
  return output;
}

inline uint32_t bits(float value) {
  uint32_t word;
  std::memcpy(&word, &value, 4);
  return word;
}

inline float scale_of_block(const std::vector<uint8_t>& payload, size_t block) {
  float scale;
  std::memcpy(&scale, payload.data() + kHeaderSize + 4 * block, 4);
  return scale;
}

// Every codec configuration worth testing.
inline std::vector<CodecConfig> all_configs() {
  std::vector<CodecConfig> configs;
  for (const CodecDescriptor* row = codec_table_begin(); row != codec_table_end(); ++row) {
    configs.push_back({.codec = row->codec});  // every codec of the table, at its defaults
  }
  configs.push_back(
      {.codec = Codec::kInt8Block, .stochastic_rounding = true, .seed = 0x1234'5678'9ABC'DEF0ull});
  configs.push_back({.codec = Codec::kSignBlock, .block_size = 32});
  configs.push_back({.codec = Codec::kInt8Block, .block_size = 4096});
  configs.push_back({.codec = Codec::kTopK, .topk_fraction = 0.3});
  return configs;
}

}  // namespace torchwan::compression::testing
