// Reusable byte buffers for large temporaries: the collectives' scratch (engine) and the sealed
// form of encrypted messages (transport's encryption decorator).
//
// A fresh multi-megabyte allocation is fresh pages from the kernel: every use page-faults and
// zeroes all of it again (on a 256 MiB compressed allreduce that was a third of the machine's CPU
// time, and encrypting a message cost little more than faulting in its sealed copy). The pool
// keeps released buffers, bounded in bytes and in count, and hands the best-fitting one to the
// next request:
// - smallest fit, and only when it is at most kMaxFitRatio times the size asked for, so a small
//   request does not pin a large buffer;
// - requests below `min_pooled_bytes` are neither served from nor kept in the cache (their
//   faults cost little, and many small sizes would only hold memory);
// - when a release would exceed a bound, the buffers released longest ago are freed first; a
//   buffer larger than the whole cache is freed at once.
// Memory is aligned to kAlignment bytes (a cache line, and every vector width the codecs use) and
// uninitialised.
//
// Thread safety: take() and the release of a Buffer may happen on any thread. A Buffer may
// outlive its pool; it then frees its memory instead of returning it.
#pragma once

#include <cstddef>
#include <cstdint>
#include <limits>
#include <memory>

namespace torchwan::base {

class BufferPool {
  struct State;

 public:
  static constexpr size_t kAlignment = 64;
  static constexpr size_t kMaxFitRatio = 2;

  struct Limits {
    size_t max_cached_bytes = 0;  // 0 keeps nothing: every buffer is freed on release
    size_t max_cached_buffers = std::numeric_limits<size_t>::max();
    size_t min_pooled_bytes = 0;
  };

  // At least the size asked for; back to its pool when destroyed or reset.
  class Buffer {
   public:
    Buffer() = default;
    Buffer(Buffer&&) noexcept = default;
    Buffer& operator=(Buffer&& other) noexcept;
    Buffer(const Buffer&) = delete;
    Buffer& operator=(const Buffer&) = delete;
    ~Buffer() { reset(); }

    uint8_t* data() const { return memory_.get(); }
    size_t capacity() const { return capacity_; }
    // Returns the memory to its pool now (or frees it); the Buffer is empty afterwards.
    void reset() noexcept;

   private:
    friend class BufferPool;
    struct Free {
      void operator()(uint8_t* memory) const noexcept;
    };
    using Memory = std::unique_ptr<uint8_t[], Free>;
    Buffer(Memory memory, size_t capacity, std::weak_ptr<State> home);

    Memory memory_;
    size_t capacity_ = 0;
    std::weak_ptr<State> home_;  // empty for memory that is not pooled
  };

  explicit BufferPool(Limits limits);
  ~BufferPool();
  BufferPool(const BufferPool&) = delete;
  BufferPool& operator=(const BufferPool&) = delete;

  Buffer take(size_t bytes);
  // Memory that no pool keeps: for callers without one.
  static Buffer unpooled(size_t bytes);

  const Limits& limits() const;
  size_t cached_bytes() const;
  size_t cached_buffers() const;
  // Requests served from the cache so far.
  uint64_t reuses() const;

 private:
  std::shared_ptr<State> state_;
};

}  // namespace torchwan::base
