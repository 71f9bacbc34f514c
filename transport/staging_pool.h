// Reusable byte buffers for messages that must pass through memory of their own (the sealed
// form of an encrypted message). A fresh multi-megabyte allocation is fresh pages from the
// kernel, and faulting them in costs a fair part of what encrypting them does, so buffers go back
// to the pool when a message is done. Thread-safe.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <mutex>
#include <vector>

namespace torchwan::transport {

class StagingPool {
 public:
  class Buffer {
   public:
    Buffer() = default;
    explicit Buffer(size_t capacity);
    uint8_t* data() { return bytes_.get(); }
    const uint8_t* data() const { return bytes_.get(); }
    size_t capacity() const { return capacity_; }

   private:
    std::unique_ptr<uint8_t[]> bytes_;
    size_t capacity_ = 0;
  };

  // Keeps at most `max_buffers` idle buffers of at most `max_bytes` together; more are freed.
  StagingPool(size_t max_bytes, size_t max_buffers);

  // A buffer of at least `bytes` bytes (contents undefined): the smallest idle one that fits, or
  // a new one.
  Buffer acquire(size_t bytes);
  void release(Buffer buffer);

  size_t idle_buffers() const;

 private:
  const size_t max_bytes_;
  const size_t max_buffers_;
  mutable std::mutex mutex_;
  std::vector<Buffer> idle_;
  size_t idle_bytes_ = 0;
};

}  // namespace torchwan::transport
