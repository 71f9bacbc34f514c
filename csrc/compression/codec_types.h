// Codec identifiers and the parameters a caller chooses. Plain data, shared by every layer.
#pragma once

#include <cstdint>

namespace torchwan::compression {

// Values are part of the wire format: never renumber. Everything else about a codec is in its row
// of the codec table (codec_table.h).
enum class Codec : uint8_t {
  kFloat16 = 1,      // IEEE half, round to nearest even
  kBFloat16 = 2,     // bfloat16, round to nearest even
  kInt8Block = 3,    // int8 codes, one absmax/127 scale per block
  kFloat8Block = 4,  // float8 e4m3 codes (saturating), one absmax/448 scale per block
  kSignBlock = 5,    // one sign bit per element, one mean-|x| scale per block
  kTopK = 6,         // the k largest magnitudes as (index, fp32 value) pairs
};

// The codec's name as users write it ("int8"); "unknown" for a value that names no codec.
const char* codec_name(Codec codec);

struct CodecConfig {
  Codec codec = Codec::kInt8Block;
  // Elements per scale for block codecs; 0 picks the codec default. A power of two in
  // [32, 2^20]. Ignored (must be 0 on the wire) for the casts and top-k.
  uint32_t block_size = 0;
  // Top-k: the fraction of elements kept, in (0, 1]; k = ceil(fraction * n), at least 1.
  double topk_fraction = 0.01;
  // int8 only: round up with probability equal to the fractional part instead of to nearest.
  // The random numbers are a pure function of (seed, element index): vary the seed per step.
  bool stochastic_rounding = false;
  uint64_t seed = 0;
};

constexpr uint32_t kDefaultBlockSize = 256;

// The block size `config` asks for: its own, or kDefaultBlockSize when it leaves it at 0.
constexpr uint32_t requested_block_size(const CodecConfig& config) {
  return config.block_size == 0 ? kDefaultBlockSize : config.block_size;
}

}  // namespace torchwan::compression
