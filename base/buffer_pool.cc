#include "base/buffer_pool.h"

#include <map>
#include <mutex>
#include <new>
#include <utility>

namespace torchwan::base {

namespace {

// Uninitialised, aligned, at least one byte (so even an empty request has a valid pointer).
uint8_t* allocate(size_t bytes) {
  return static_cast<uint8_t*>(
      ::operator new(bytes == 0 ? 1 : bytes, std::align_val_t{BufferPool::kAlignment}));
}

}  // namespace

void BufferPool::Buffer::Free::operator()(uint8_t* memory) const noexcept {
  ::operator delete(memory, std::align_val_t{BufferPool::kAlignment});
}

struct BufferPool::State {
  struct Cached {
    Buffer::Memory memory;
    uint64_t released_at;  // release order: the oldest is evicted first
  };

  explicit State(Limits limits) : limits(limits) {}

  // Keeps `memory` unless it cannot fit under the bounds even after evicting everything older.
  void give_back(Buffer::Memory memory, size_t capacity) {
    std::lock_guard<std::mutex> lock(mutex);
    if (capacity > limits.max_cached_bytes || limits.max_cached_buffers == 0) return;
    while (cached_bytes + capacity > limits.max_cached_bytes ||
           cached.size() >= limits.max_cached_buffers) {
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
  const Limits limits;
  std::multimap<size_t, Cached> cached;  // by capacity
  size_t cached_bytes = 0;
  uint64_t releases = 0;
  uint64_t reuses = 0;
};

BufferPool::Buffer::Buffer(Memory memory, size_t capacity, std::weak_ptr<State> home)
    : memory_(std::move(memory)), capacity_(capacity), home_(std::move(home)) {}

BufferPool::Buffer& BufferPool::Buffer::operator=(Buffer&& other) noexcept {
  if (this != &other) {
    reset();
    memory_ = std::move(other.memory_);
    capacity_ = std::exchange(other.capacity_, 0);
    home_ = std::move(other.home_);
  }
  return *this;
}

void BufferPool::Buffer::reset() noexcept {
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
  home_.reset();
}

BufferPool::BufferPool(Limits limits) : state_(std::make_shared<State>(limits)) {}

BufferPool::~BufferPool() = default;

BufferPool::Buffer BufferPool::take(size_t bytes) {
  if (bytes < state_->limits.min_pooled_bytes) return unpooled(bytes);
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
  return Buffer(Buffer::Memory(allocate(bytes)), bytes, state_);
}

BufferPool::Buffer BufferPool::unpooled(size_t bytes) {
  return Buffer(Buffer::Memory(allocate(bytes)), bytes, {});
}

const BufferPool::Limits& BufferPool::limits() const { return state_->limits; }

size_t BufferPool::cached_bytes() const {
  std::lock_guard<std::mutex> lock(state_->mutex);
  return state_->cached_bytes;
}

size_t BufferPool::cached_buffers() const {
  std::lock_guard<std::mutex> lock(state_->mutex);
  return state_->cached.size();
}

uint64_t BufferPool::reuses() const {
  std::lock_guard<std::mutex> lock(state_->mutex);
  return state_->reuses;
}

}  // namespace torchwan::base
