#include "transport/striping.h"

#include <gtest/gtest.h>

#include <numeric>

namespace torchwan::transport {
namespace {

size_t covered_bytes(const std::vector<WirePiece>& pieces) {
  return std::accumulate(pieces.begin(), pieces.end(), size_t{0},
                         [](size_t sum, const WirePiece& p) { return sum + p.length; });
}

TEST(Striping, SmallMessageStaysOnOneLaneChosenByTag) {
  TransportOptions options;
  options.lanes = 4;
  auto pieces = plan_pieces(options, /*tag=*/6, 1000);
  ASSERT_EQ(pieces.size(), 1u);
  EXPECT_EQ(pieces[0].lane, 2);
  EXPECT_EQ(pieces[0].length, 1000u);
}

TEST(Striping, ZeroLengthIsOneEmptyPiece) {
  TransportOptions options;
  auto pieces = plan_pieces(options, 0, 0);
  ASSERT_EQ(pieces.size(), 1u);
  EXPECT_EQ(pieces[0].length, 0u);
}

TEST(Striping, LargeMessageCoversEveryByteOnceOverAllLanes) {
  TransportOptions options;
  options.lanes = 3;
  options.chunk_bytes = 1 << 20;
  const size_t length = (size_t{10} << 20) + 7;
  auto pieces = plan_pieces(options, 0, length);
  EXPECT_EQ(covered_bytes(pieces), length);
  size_t expected_offset = 0;
  std::vector<int> per_lane(3, 0);
  for (const auto& piece : pieces) {
    EXPECT_EQ(piece.offset, expected_offset);
    EXPECT_LE(piece.length, options.chunk_bytes);
    expected_offset += piece.length;
    per_lane[static_cast<size_t>(piece.lane)]++;
  }
  for (int count : per_lane) EXPECT_GT(count, 0);
}

}  // namespace
}  // namespace torchwan::transport
