// The scratch pool: large buffers come back for the next request of a similar size, small ones
// are never kept, and the cache stays under its limit by dropping what was released first.
#include "csrc/scratch_pool.h"

#include <gtest/gtest.h>

#include <cstring>
#include <stdexcept>
#include <utility>

namespace torchwan::engine {
namespace {

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

}  // namespace
}  // namespace torchwan::engine
