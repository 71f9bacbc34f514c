#include "csrc/scratch_pool.h"

#include <limits>
#include <optional>

#include "base/option_registry.h"
#include "transport/options.h"

namespace torchwan::engine {

ScratchPool::ScratchPool(size_t max_cached_bytes)
    : base::BufferPool({.max_cached_bytes = max_cached_bytes,
                        .max_cached_buffers = std::numeric_limits<size_t>::max(),
                        .min_pooled_bytes = kMinPooledBytes}) {}

size_t ScratchPool::parse_max_cached_bytes(const std::string& text) {
  return transport::parse_size("scratch_cache_bytes", text);
}

size_t ScratchPool::max_cached_bytes_from_env() {
  const std::optional<std::string> value = base::option_env_value("scratch_cache_bytes");
  return value ? parse_max_cached_bytes(*value) : kDefaultMaxCachedBytes;
}

}  // namespace torchwan::engine
