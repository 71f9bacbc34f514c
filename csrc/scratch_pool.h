// The collectives' scratch: the one buffer pool (base/buffer_pool.h) as the engine sets it up for
// the large temporaries of a group's collectives, kept for the group's next call. Requests below
// kMinPooledBytes are not pooled (their faults cost little); up to scratch_cache_bytes of released
// buffers are kept.
#pragma once

#include <cstddef>
#include <string>

#include "base/buffer_pool.h"

namespace torchwan::engine {

class ScratchPool : public base::BufferPool {
 public:
  static constexpr size_t kMinPooledBytes = size_t{4} << 20;
  // Enough for a 256 MiB compressed allreduce or a few dozen ring calls' staging.
  static constexpr size_t kDefaultMaxCachedBytes = size_t{256} << 20;
  // TORCHWAN_SCRATCH_CACHE_BYTES when set (throws std::invalid_argument naming it when it is not
  // a byte count), else kDefaultMaxCachedBytes.
  static size_t max_cached_bytes_from_env();
  // A byte count in decimal (transport::parse_size); throws std::invalid_argument naming the
  // option scratch_cache_bytes otherwise.
  static size_t parse_max_cached_bytes(const std::string& text);

  // 0 caches nothing: every buffer is freed on release. Out of line, like the option functions:
  // whatever constructs a pool then links this file, so the backend's shared library also holds
  // max_cached_bytes_from_env(), which its public header calls.
  explicit ScratchPool(size_t max_cached_bytes);
};

}  // namespace torchwan::engine
