// The core's matching for links that do not match tags themselves
// (transport/core/inbound_matcher.h): pieces reassemble in any order whether or not the receive
// is posted yet, inconsistent or out-of-bounds pieces are protocol errors, a canceled or lost
// sender fails its receive, and any-source receives take claimable messages in arrival order.
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "transport/core/inbound_matcher.h"
#include "transport/errors.h"

namespace torchwan::transport::core {
namespace {

bool contains(const std::string& text, const std::string& part) {
  return text.find(part) != std::string::npos;
}

std::optional<TransportError> error_of(const Request& request) {
  if (!request.error()) return std::nullopt;
  try {
    std::rethrow_exception(request.error());
  } catch (const TransportError& error) {
    return error;
  }
}

PieceHeader piece(Tag tag, uint64_t index, uint64_t total, uint64_t offset, uint64_t length) {
  return {tag, index, total, offset, length};
}

HeldBytes bytes(std::vector<uint8_t> values) { return HeldBytes::hold(std::move(values)); }

TEST(InboundMatcher, ReassemblesOutOfOrderPiecesAndRejectsInconsistentOnes) {
  InboundMatcher matcher("rank 0");
  // Message #0 of tag 1 in two pieces, the second first; its receive posted in between.
  std::vector<uint8_t> buffer(6, 0);
  auto request = std::make_shared<Request>(1, 1, buffer.size());
  EXPECT_EQ(matcher.deliver(1, piece(1, 0, 6, 3, 3), bytes({4, 5, 6})), "");
  matcher.post({request, 10, 1, 1, buffer.data(), buffer.size()});
  EXPECT_FALSE(request->done());
  EXPECT_EQ(matcher.deliver(1, piece(1, 0, 6, 0, 3), bytes({1, 2, 3})), "");
  ASSERT_TRUE(request->done());
  EXPECT_TRUE(request->ok());
  EXPECT_EQ(buffer, (std::vector<uint8_t>{1, 2, 3, 4, 5, 6}));
  EXPECT_EQ(matcher.posted_count(), 0u);

  // Message #1: a piece repeated past the announced length, then one announcing another length.
  EXPECT_EQ(matcher.deliver(1, piece(1, 1, 4, 0, 3), bytes({1, 2, 3})), "");
  EXPECT_TRUE(contains(matcher.deliver(1, piece(1, 1, 4, 0, 3), bytes({1, 2, 3})), "more bytes"));
  EXPECT_TRUE(contains(matcher.deliver(1, piece(1, 1, 9, 3, 1), bytes({4})), "disagree"));
  // Pieces that do not fit their message, or not their own header, never reach a buffer.
  EXPECT_TRUE(contains(matcher.deliver(1, piece(1, 2, 4, 3, 2), bytes({1, 2})), "outside"));
  EXPECT_TRUE(contains(matcher.deliver(1, piece(1, 2, 4, 0, 3), bytes({1})), "came with 1"));

  // A receive whose sender canceled the message fails instead of waiting forever.
  matcher.sender_canceled(1, 2, 0);
  auto canceled = std::make_shared<Request>(1, 2, 8);
  std::vector<uint8_t> unused(8);
  matcher.post({canceled, 11, 1, 2, unused.data(), unused.size()});
  ASSERT_TRUE(canceled->done());
  ASSERT_TRUE(error_of(*canceled));
  EXPECT_EQ(error_of(*canceled)->kind(), ErrorKind::kCanceled);

  // Losing the peer fails what is still posted.
  auto pending = std::make_shared<Request>(1, 3, 8);
  matcher.post({pending, 12, 1, 3, unused.data(), unused.size()});
  EXPECT_EQ(matcher.fail_peer(
                1, std::make_exception_ptr(TransportError(ErrorKind::kPeerLost, "gone", 1))),
            1u);
  ASSERT_TRUE(error_of(*pending));
  EXPECT_EQ(error_of(*pending)->kind(), ErrorKind::kPeerLost);
}

TEST(InboundMatcher, AnySourceTakesClaimableMessagesInArrivalOrderAndKeepsEachSendersOrder) {
  InboundMatcher matcher("rank 0");
  // Rank 2's first message arrives first, then rank 1's first and rank 2's second.
  EXPECT_EQ(matcher.deliver(2, piece(9, 0, 1, 0, 1), bytes({20})), "");
  EXPECT_EQ(matcher.deliver(1, piece(9, 0, 1, 0, 1), bytes({10})), "");
  EXPECT_EQ(matcher.deliver(2, piece(9, 1, 1, 0, 1), bytes({21})), "");
  std::vector<uint8_t> got(3, 0);
  std::vector<std::shared_ptr<Request>> requests;
  for (uint64_t i = 0; i < 3; ++i) {
    requests.push_back(std::make_shared<Request>(kAnySource, 9, 1));
    requests.back()->expect_parts(1);
    matcher.post_any({requests.back(), 20 + i, kAnySource, 9, &got[i], 1});
  }
  for (const auto& request : requests) ASSERT_TRUE(request->done() && request->ok());
  EXPECT_EQ(got, (std::vector<uint8_t>{20, 10, 21}));
  EXPECT_EQ(requests[0]->source(), 2);
  EXPECT_EQ(requests[1]->source(), 1);
  EXPECT_EQ(requests[2]->source(), 2);

  // A waiting any-source receive takes the next message when its first piece arrives, before an
  // exact receive posted later; that one gets the message after it.
  std::vector<uint8_t> any(2, 0);
  std::vector<uint8_t> exact(2, 0);
  auto waiting = std::make_shared<Request>(kAnySource, 9, 2);
  matcher.post_any({waiting, 30, kAnySource, 9, any.data(), 2});
  EXPECT_EQ(matcher.deliver(1, piece(9, 1, 2, 0, 1), bytes({1})), "");
  auto later = std::make_shared<Request>(1, 9, 2);
  matcher.post({later, 31, 1, 9, exact.data(), 2});
  EXPECT_EQ(matcher.deliver(1, piece(9, 1, 2, 1, 1), bytes({2})), "");
  EXPECT_EQ(matcher.deliver(1, piece(9, 2, 2, 0, 2), bytes({3, 4})), "");
  ASSERT_TRUE(waiting->done() && waiting->ok());
  ASSERT_TRUE(later->done() && later->ok());
  EXPECT_EQ(waiting->source(), 1);
  EXPECT_EQ(any, (std::vector<uint8_t>{1, 2}));
  EXPECT_EQ(exact, (std::vector<uint8_t>{3, 4}));
  EXPECT_EQ(matcher.posted_count(), 0u);
}

}  // namespace
}  // namespace torchwan::transport::core
