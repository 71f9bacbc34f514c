// The one buffer pool (base/buffer_pool.h) as its two users set it up: the engine's scratch
// (large buffers come back for the next request of a similar size, small ones are never kept) and
// the encryption decorator's staging (bounded in count too). The cache stays under its bounds by
// dropping what was released first, memory is aligned, and buffers may outlive the pool.
#include "base/buffer_pool.h"

#include <gtest/gtest.h>

#include <cstring>
#include <stdexcept>
#include <thread>
#include <utility>
#include <vector>

#include "csrc/scratch_pool.h"

namespace torchwan::engine {
namespace {

using base::BufferPool;

// Sizes in units of the smallest pooled request.
constexpr size_t kUnit = ScratchPool::kMinPooledBytes;

TEST(ScratchPool, ReleasedBufferServesTheNextRequest) {
  ScratchPool pool(64 * kUnit);
  uint8_t* first = nullptr;
  {
    auto buffer = pool.take(4 * kUnit);
    ASSERT_GE(buffer.capacity(), 4 * kUnit);
    std::memset(buffer.data(), 1, 4 * kUnit);  // all of it is usable
    first = buffer.data();
  }
  EXPECT_EQ(pool.cached_bytes(), 4 * kUnit);
  auto again = pool.take(3 * kUnit);
  EXPECT_EQ(again.data(), first);
  EXPECT_EQ(pool.reuses(), 1u);
  EXPECT_EQ(pool.cached_bytes(), 0u);
}

TEST(ScratchPool, SmallRequestsAreNotKept) {
  ScratchPool pool(64 * kUnit);
  { auto buffer = pool.take(ScratchPool::kMinPooledBytes - 1); }
  EXPECT_EQ(pool.cached_bytes(), 0u);
  { auto buffer = pool.take(0); }  // still a valid buffer
  EXPECT_EQ(pool.reuses(), 0u);
}

TEST(ScratchPool, AMuchLargerBufferIsNotHandedToASmallRequest) {
  ScratchPool pool(64 * kUnit);
  { auto large = pool.take(8 * kUnit); }
  {
    auto small = pool.take(3 * kUnit);  // 8 MiB is more than twice 3 MiB
    EXPECT_EQ(pool.reuses(), 0u);
    EXPECT_EQ(pool.cached_bytes(), 8 * kUnit);
  }
  auto fitting = pool.take(5 * kUnit);
  EXPECT_EQ(pool.reuses(), 1u);
  EXPECT_EQ(fitting.capacity(), 8 * kUnit);
}

TEST(ScratchPool, LimitEvictsTheOldestAndRefusesWhatCannotFit) {
  ScratchPool pool(10 * kUnit);
  auto a = pool.take(6 * kUnit);
  auto b = pool.take(4 * kUnit);
  auto c = pool.take(5 * kUnit);
  const uint8_t* newest = c.data();
  a = ScratchPool::Buffer();  // released first
  b = ScratchPool::Buffer();
  EXPECT_EQ(pool.cached_bytes(), 10 * kUnit);
  c = ScratchPool::Buffer();  // evicts a (6 MiB), keeps b and c
  EXPECT_EQ(pool.cached_bytes(), 9 * kUnit);
  auto again = pool.take(5 * kUnit);
  EXPECT_EQ(again.data(), newest);
  { auto huge = pool.take(11 * kUnit); }  // larger than the whole cache: freed on release
  EXPECT_EQ(pool.cached_bytes(), 4 * kUnit);
}

TEST(ScratchPool, ZeroLimitKeepsNothing) {
  ScratchPool pool(0);
  { auto buffer = pool.take(2 * kUnit); }
  EXPECT_EQ(pool.cached_bytes(), 0u);
}

TEST(ScratchPool, BufferMayOutliveItsPool) {
  ScratchPool::Buffer survivor;
  {
    ScratchPool pool(64 * kUnit);
    survivor = pool.take(2 * kUnit);
  }
  std::memset(survivor.data(), 0, 2 * kUnit);
  survivor = ScratchPool::Buffer();  // frees instead of returning to the gone pool
  EXPECT_EQ(survivor.data(), nullptr);
}

TEST(ScratchPool, ParsesItsLimit) {
  EXPECT_EQ(ScratchPool::parse_max_cached_bytes("0"), 0u);
  EXPECT_EQ(ScratchPool::parse_max_cached_bytes("1048576"), size_t{1} << 20);
  for (const char* bad : {"", "-1", "12x", "many"}) {
    EXPECT_THROW(
        {
          try {
            ScratchPool::parse_max_cached_bytes(bad);
          } catch (const std::invalid_argument& error) {
            EXPECT_NE(std::string(error.what()).find("scratch_cache_bytes"), std::string::npos);
            throw;
          }
        },
        std::invalid_argument)
        << bad;
  }
}

TEST(BufferPool, CountBoundEvictsTheOldestAndSmallBuffersArePooledWithoutAMinimum) {
  BufferPool pool({.max_cached_bytes = 1 << 20, .max_cached_buffers = 2});
  auto small = pool.take(100);
  auto medium = pool.take(150);
  auto large = pool.take(4096);
  const uint8_t* medium_bytes = medium.data();
  small.reset();
  medium.reset();
  EXPECT_EQ(pool.cached_buffers(), 2u);
  large.reset();  // a third: the oldest (small) goes
  EXPECT_EQ(pool.cached_buffers(), 2u);
  EXPECT_EQ(pool.cached_bytes(), 150u + 4096u);
  auto again = pool.take(80);  // the smallest fit within twice the size asked for
  EXPECT_EQ(again.data(), medium_bytes);
  EXPECT_EQ(pool.reuses(), 1u);
  { auto huge = pool.take(2 << 20); }  // over the byte bound: freed
  EXPECT_EQ(pool.cached_buffers(), 1u);
}

TEST(BufferPool, MemoryIsAlignedEvenForEmptyRequests) {
  BufferPool pool({.max_cached_bytes = 1 << 20});
  for (size_t bytes : {size_t{0}, size_t{1}, size_t{63}, size_t{4097}}) {
    auto buffer = pool.take(bytes);
    ASSERT_NE(buffer.data(), nullptr);
    EXPECT_EQ(reinterpret_cast<uintptr_t>(buffer.data()) % BufferPool::kAlignment, 0u) << bytes;
    auto unpooled = BufferPool::unpooled(bytes);
    EXPECT_EQ(reinterpret_cast<uintptr_t>(unpooled.data()) % BufferPool::kAlignment, 0u) << bytes;
  }
}

TEST(BufferPool, TakeAndReleaseFromManyThreadsStayWithinTheBounds) {
  BufferPool pool({.max_cached_bytes = 64 << 10, .max_cached_buffers = 8});
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&pool, t] {
      for (int i = 0; i < 2000; ++i) {
        auto buffer = pool.take(static_cast<size_t>(1024 + 512 * ((i + t) % 8)));
        buffer.data()[0] = static_cast<uint8_t>(i);
      }
    });
  }
  for (auto& thread : threads) thread.join();
  EXPECT_LE(pool.cached_buffers(), 8u);
  EXPECT_LE(pool.cached_bytes(), size_t{64} << 10);
  EXPECT_GT(pool.reuses(), 0u);
}

}  // namespace
}  // namespace torchwan::engine
