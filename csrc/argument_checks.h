// Argument checks shared by the collective entry points. They look only at what every rank of a
// correct call passes identically (counts, roots, dtypes), so a bad call fails on every rank
// before any traffic instead of leaving the others waiting.
#pragma once

#include <cstddef>
#include <cstring>
#include <stdexcept>
#include <string>

#include "csrc/collectives.h"
#include "csrc/dtype.h"

namespace torchwan::engine {

inline void require_reduction(const char* collective, DataType dtype, ReduceOp op) {
  if (!reduce_supported(dtype, op)) {
    throw std::invalid_argument(std::string(collective) + ": " + reduce_op_name(op) +
                                " is not defined for " + dtype_name(dtype));
  }
}

inline void require_buffer(const char* collective, const void* buffer, size_t bytes) {
  if (buffer == nullptr && bytes > 0) {
    throw std::invalid_argument(std::string(collective) + ": null buffer for " +
                                std::to_string(bytes) + " bytes");
  }
}

inline void require_root(const char* collective, int root, int size) {
  if (root < 0 || root >= size) {
    throw std::invalid_argument(std::string(collective) + ": root " + std::to_string(root) +
                                " is not a rank of " + std::to_string(size));
  }
}

// `count` items of `item_bytes` each, or invalid_argument when that overflows size_t.
inline size_t checked_bytes(const char* collective, size_t count, size_t item_bytes) {
  if (item_bytes != 0 && count > SIZE_MAX / item_bytes) {
    throw std::invalid_argument(std::string(collective) + ": " + std::to_string(count) + " x " +
                                std::to_string(item_bytes) + " bytes overflows");
  }
  return count * item_bytes;
}

// Copies unless source and destination are the same bytes (allowed aliasing).
inline void copy_bytes(void* destination, const void* source, size_t bytes) {
  if (destination != source && bytes > 0) std::memmove(destination, source, bytes);
}

// Whether a call must run an Exchange: there are peers, and data to move or a signature to check
// (a zero-byte call with a signature still checks it, so a rank passing 0 while another passes
// 1000 fails instead of returning alone).
inline bool needs_exchange(const CollectiveContext& ctx, size_t bytes) {
  return ctx.transport.size() > 1 && (bytes > 0 || ctx.signature != nullptr);
}

}  // namespace torchwan::engine
