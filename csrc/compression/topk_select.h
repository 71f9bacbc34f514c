// Threshold search of the top-k codec, shared by the CPU and CUDA paths (which only differ in how
// they build the histograms). The kept set is defined exactly: order elements by |t| descending
// (as magnitude bits, so NaN ranks above Inf), ties by index ascending, keep the first k. A radix
// select finds the k-th key T in three histogram passes over the 31 magnitude bits; then the
// elements with key > T, and the first `ties` elements (by index) with key == T, are kept.
// C++17 (the CUDA files include it).
#pragma once

#include <cstddef>
#include <cstdint>

namespace torchwan::compression {

struct RadixPass {
  int shift;
  int bits;
};
inline constexpr RadixPass kTopKPasses[3] = {{20, 11}, {10, 10}, {0, 10}};
constexpr int kTopKMaxBins = 1 << 11;

struct RadixSelect {
  uint32_t prefix = 0;       // key bits decided so far
  uint32_t prefix_mask = 0;  // which bits those are
  uint64_t remaining = 0;    // elements still to take among keys matching the prefix

  explicit RadixSelect(uint64_t k) : remaining(k) {}

  // Whether `key` matches the digits decided so far (the keys a pass must count).
  bool matches(uint32_t key) const { return (key & prefix_mask) == prefix; }

  // Consumes the histogram of `pass`'s digit over the matching keys: fixes the digit holding the
  // remaining-th largest key and subtracts the count of keys above it.
  void consume(const RadixPass& pass, const uint64_t* histogram, size_t bins);

  uint32_t threshold() const { return prefix; }
  uint64_t ties() const { return remaining; }
};

}  // namespace torchwan::compression
