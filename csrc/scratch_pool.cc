#include "csrc/scratch_pool.h"

#include <map>
#include <mutex>
#include <optional>
#include <utility>

#include "base/option_registry.h"
#include "transport/options.h"

namespace torchwan::engine {

struct ScratchPool::State {
  struct Cached {
    std::unique_ptr<uint8_t[]> memory;
    uint64_t released_at;  // release order: the oldest is evicted first
  };

  explicit State(size_t max_bytes) : max_cached_bytes(max_bytes) {}

  // Keeps `memory` unless it cannot fit under the limit even after evicting everything older.
  void give_back(std::unique_ptr<uint8_t[]> memory, size_t capacity) {
    std::lock_guard<std::mutex> lock(mutex);
    if (capacity > max_cached_bytes) return;  // `memory` is freed on return
    while (cached_bytes + capacity > max_cached_bytes) {
      auto oldest = cached.begin();
      for (auto it = cached.begin(); it != cached.end(); ++it) {
        if (it->second.released_at < oldest->second.released_at) oldest = it;
      }
      cached_bytes -= oldest->first;
      cached.erase(oldest);  // rare (the working set changed), so freed under the lock
    }
    cached_bytes += capacity;
    cached.emplace(capacity, Cached{std::move(memory), ++releases});
  }

  std::mutex mutex;
  const size_t max_cached_bytes;
  std::multimap<size_t, Cached> cached;  // by capacity
  size_t cached_bytes = 0;
  uint64_t releases = 0;
  uint64_t reuses = 0;
};

ScratchPool::Buffer::Buffer(std::unique_ptr<uint8_t[]> memory, size_t capacity,
                            std::weak_ptr<State> home)
    : memory_(std::move(memory)), capacity_(capacity), home_(std::move(home)) {}

ScratchPool::Buffer& ScratchPool::Buffer::operator=(Buffer&& other) noexcept {
  if (this != &other) {
    release();
    memory_ = std::move(other.memory_);
    capacity_ = std::exchange(other.capacity_, 0);
    home_ = std::move(other.home_);
  }
  return *this;
}

ScratchPool::Buffer::~Buffer() { release(); }

void ScratchPool::Buffer::release() noexcept {
  if (!memory_) return;
  if (auto home = home_.lock()) {
    try {
      home->give_back(std::move(memory_), capacity_);
    } catch (...) {
      // The cache could not grow its index: the memory is simply freed.
    }
  }
  memory_.reset();
  capacity_ = 0;
}

size_t ScratchPool::parse_max_cached_bytes(const std::string& text) {
  return transport::parse_size("scratch_cache_bytes", text);
}

size_t ScratchPool::max_cached_bytes_from_env() {
  const std::optional<std::string> value = base::option_env_value("scratch_cache_bytes");
  return value ? parse_max_cached_bytes(*value) : kDefaultMaxCachedBytes;
}

ScratchPool::ScratchPool(size_t max_cached_bytes)
    : state_(std::make_shared<State>(max_cached_bytes)) {}

ScratchPool::~ScratchPool() = default;

ScratchPool::Buffer ScratchPool::take(size_t bytes) {
  if (bytes < kMinPooledBytes) return unpooled(bytes);
  {
    std::lock_guard<std::mutex> lock(state_->mutex);
    const auto fit = state_->cached.lower_bound(bytes);
    if (fit != state_->cached.end() && fit->first / kMaxFitRatio <= bytes) {
      const size_t capacity = fit->first;
      auto memory = std::move(fit->second.memory);
      state_->cached.erase(fit);
      state_->cached_bytes -= capacity;
      ++state_->reuses;
      return Buffer(std::move(memory), capacity, state_);
    }
  }
  return Buffer(std::make_unique_for_overwrite<uint8_t[]>(bytes), bytes, state_);
}

ScratchPool::Buffer ScratchPool::unpooled(size_t bytes) {
  const size_t capacity = bytes == 0 ? 1 : bytes;
  return Buffer(std::make_unique_for_overwrite<uint8_t[]>(capacity), capacity, {});
}

size_t ScratchPool::cached_bytes() const {
  std::lock_guard<std::mutex> lock(state_->mutex);
  return state_->cached_bytes;
}

uint64_t ScratchPool::reuses() const {
  std::lock_guard<std::mutex> lock(state_->mutex);
  return state_->reuses;
}

}  // namespace torchwan::engine
