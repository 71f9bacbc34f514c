// Large temporary buffers of collectives, kept for the next call of the same group.
//
// Without it, a collective's scratch of tens to hundreds of MiB comes from mmap on every call and
// goes back with munmap, so every call page-faults and zeroes all of it again. On a 256 MiB
// compressed allreduce that was a third of the machine's CPU time, and on a WAN host the CPU is
// what the network stack needs too. The pool keeps up to `max_cached_bytes` of released buffers
// and hands the best-fitting one to the next request. Requests below kMinPooledBytes are not
// pooled: their faults cost little (under a millisecond), and a pool of many small sizes would
// only hold memory.
//
// Thread safety: take() and the release of a Buffer may happen on any thread (an Exchange's
// buffers are released by whichever thread drops its last request). A Buffer may outlive its
// pool; it then frees its memory instead of returning it.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>

namespace torchwan::engine {

class ScratchPool {
  struct State;

 public:
  // Uninitialised memory of at least the size asked for; back to its pool when destroyed.
  class Buffer {
   public:
    Buffer() = default;
    Buffer(Buffer&&) noexcept = default;
    Buffer& operator=(Buffer&& other) noexcept;
    Buffer(const Buffer&) = delete;
    Buffer& operator=(const Buffer&) = delete;
    ~Buffer();

    uint8_t* data() const { return memory_.get(); }
    size_t capacity() const { return capacity_; }

   private:
    friend class ScratchPool;
    Buffer(std::unique_ptr<uint8_t[]> memory, size_t capacity, std::weak_ptr<State> home);
    void release() noexcept;

    std::unique_ptr<uint8_t[]> memory_;
    size_t capacity_ = 0;
    std::weak_ptr<State> home_;  // empty for memory that is not pooled
  };

  static constexpr size_t kMinPooledBytes = size_t{4} << 20;
  // Enough for a 256 MiB compressed allreduce or a few dozen ring calls' staging.
  static constexpr size_t kDefaultMaxCachedBytes = size_t{256} << 20;
  // TORCHWAN_SCRATCH_CACHE_BYTES when set (throws std::invalid_argument naming it when it is not
  // a byte count), else kDefaultMaxCachedBytes.
  static size_t max_cached_bytes_from_env();
  // A byte count in decimal (transport::parse_size); throws std::invalid_argument naming the
  // option scratch_cache_bytes otherwise.
  static size_t parse_max_cached_bytes(const std::string& text);
  // A cached buffer serves a request only when it is at most this many times the size asked for,
  // so a small request does not pin a large buffer.
  static constexpr size_t kMaxFitRatio = 2;

  // 0 caches nothing: every buffer is freed on release.
  explicit ScratchPool(size_t max_cached_bytes);
  ~ScratchPool();
  ScratchPool(const ScratchPool&) = delete;
  ScratchPool& operator=(const ScratchPool&) = delete;

  Buffer take(size_t bytes);
  // Memory that no pool keeps: for callers without one.
  static Buffer unpooled(size_t bytes);

  size_t cached_bytes() const;
  // Requests served from the cache so far.
  uint64_t reuses() const;

 private:
  std::shared_ptr<State> state_;
};

}  // namespace torchwan::engine
