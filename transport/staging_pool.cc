#include "transport/staging_pool.h"

#include <algorithm>
#include <utility>

namespace torchwan::transport {

StagingPool::Buffer::Buffer(size_t capacity)
    : bytes_(std::make_unique_for_overwrite<uint8_t[]>(std::max<size_t>(capacity, 1))),
      capacity_(capacity) {}

StagingPool::StagingPool(size_t max_bytes, size_t max_buffers)
    : max_bytes_(max_bytes), max_buffers_(max_buffers) {}

StagingPool::Buffer StagingPool::acquire(size_t bytes) {
  {
    std::lock_guard<std::mutex> lock(mutex_);
    auto best = idle_.end();
    for (auto it = idle_.begin(); it != idle_.end(); ++it) {
      if (it->capacity() >= bytes && (best == idle_.end() || it->capacity() < best->capacity())) {
        best = it;
      }
    }
    if (best != idle_.end()) {
      std::iter_swap(best, idle_.end() - 1);
      Buffer buffer = std::move(idle_.back());
      idle_.pop_back();
      idle_bytes_ -= buffer.capacity();
      return buffer;
    }
  }
  return Buffer(bytes);
}

void StagingPool::release(Buffer buffer) {
  if (buffer.data() == nullptr) return;
  std::lock_guard<std::mutex> lock(mutex_);
  if (idle_.size() >= max_buffers_ || idle_bytes_ + buffer.capacity() > max_bytes_) return;
  idle_bytes_ += buffer.capacity();
  idle_.push_back(std::move(buffer));
}

size_t StagingPool::idle_buffers() const {
  std::lock_guard<std::mutex> lock(mutex_);
  return idle_.size();
}

}  // namespace torchwan::transport
