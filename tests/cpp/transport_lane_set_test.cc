// The core's lane set (transport/core/lane_set.h), driven by a link that records the pieces it is
// asked to post: a message is cut exactly as plan_pieces cuts it, its Request completes only once
// every piece is done and every buffer released, and fails exactly once, with the first error,
// no earlier than the link let go of its buffers (unless the link forced its connection shut).
#include <gtest/gtest.h>

#include <memory>
#include <string>
#include <vector>

#include "transport/core/lane_set.h"
#include "transport/errors.h"

namespace torchwan::transport::core {
namespace {

// A link's message: what it posted, one entry per piece.
struct RecordedMessage : PiecedMessage {
  using PiecedMessage::PiecedMessage;
  std::vector<WirePiece> posted;
};

// The "post a piece" of a link that takes every buffer zero-copy.
void post_all(RecordedMessage& message) {
  for (const WirePiece& piece : message.plan()) {
    message.hold();
    message.posted.push_back(piece);
  }
}

TransportOptions striping_options() {
  TransportOptions options;
  options.lanes = 3;
  options.stripe_min_bytes = 1000;
  options.chunk_bytes = 400;
  return options;
}

std::exception_ptr error(ErrorKind kind, const std::string& what) {
  return std::make_exception_ptr(TransportError(kind, what, 1));
}

std::string message_of(const Request& request) {
  try {
    std::rethrow_exception(request.error());
  } catch (const TransportError& failure) {
    return failure.what();
  }
}

TEST(LaneSet, CutsAMessageAsPlanPiecesDoesAndCompletesAfterTheLastPieceAndRelease) {
  const TransportOptions options = striping_options();
  auto request = std::make_shared<Request>(1, 7, 2500);
  LaneSet<RecordedMessage> lanes;
  RecordedMessage& message = lanes.add(
      std::make_unique<RecordedMessage>(11, request, /*is_send=*/true, 1, 7, 2500, options));
  post_all(message);

  const std::vector<WirePiece> expected = plan_pieces(options, 7, 2500);
  ASSERT_EQ(message.posted.size(), expected.size());
  ASSERT_GT(expected.size(), 3u);  // striped over the three lanes, each stripe in chunks
  for (size_t i = 0; i < expected.size(); ++i) {
    EXPECT_EQ(message.posted[i].lane, expected[i].lane) << "piece " << i;
    EXPECT_EQ(message.posted[i].offset, expected[i].offset) << "piece " << i;
    EXPECT_EQ(message.posted[i].length, expected[i].length) << "piece " << i;
  }

  // Every piece done but one buffer still held: the user may not have it back yet.
  for (size_t i = 0; i < expected.size(); ++i) message.piece_done();
  for (size_t i = 0; i + 1 < expected.size(); ++i) message.release();
  EXPECT_FALSE(lanes.settle(11));
  EXPECT_FALSE(request->done());
  EXPECT_EQ(lanes.size(), 1u);

  message.release();
  EXPECT_TRUE(lanes.settle(11));
  EXPECT_TRUE(request->ok());
  EXPECT_TRUE(lanes.empty());
  EXPECT_EQ(lanes.find(11), nullptr);
}

TEST(LaneSet, WaitsForEveryPieceEvenWithNothingHeld) {
  // A link that copies small pieces holds nothing, yet the message is done only after each piece.
  TransportOptions options;
  auto request = std::make_shared<Request>(1, 0, 0);
  LaneSet<RecordedMessage> lanes;
  RecordedMessage& message =
      lanes.add(std::make_unique<RecordedMessage>(1, request, true, 1, 0, 0, options));
  ASSERT_EQ(message.plan().size(), 1u);  // a zero-length message is one empty piece
  EXPECT_FALSE(lanes.settle(1));
  message.piece_done();
  EXPECT_TRUE(lanes.settle(1));
  EXPECT_TRUE(request->ok());
}

TEST(LaneSet, FailsOnceWithTheFirstErrorOnlyAfterEveryBufferIsReleased) {
  const TransportOptions options = striping_options();
  auto request = std::make_shared<Request>(1, 2, 3000);
  LaneSet<RecordedMessage> lanes;
  RecordedMessage& message =
      lanes.add(std::make_unique<RecordedMessage>(5, request, false, 1, 2, 3000, options));
  post_all(message);
  const size_t pieces = message.posted.size();

  message.piece_done();
  message.release();
  EXPECT_TRUE(message.fail(error(ErrorKind::kSizeMismatch, "first")));
  EXPECT_FALSE(message.fail(error(ErrorKind::kCanceled, "second")));  // not first: no recall
  EXPECT_TRUE(message.failed());
  // The link still holds the other pieces' buffers: the request waits for them.
  for (size_t i = 1; i + 1 < pieces; ++i) message.release();
  lanes.settle_all();
  EXPECT_FALSE(request->done());
  EXPECT_EQ(lanes.size(), 1u);

  message.release();
  lanes.settle_all();
  ASSERT_TRUE(request->done());
  EXPECT_FALSE(request->ok());
  EXPECT_EQ(message_of(*request), "first");
  EXPECT_TRUE(lanes.empty());
}

TEST(LaneSet, FailNowEndsTheRequestAtOnceButKeepsTheMessageUntilReleased) {
  TransportOptions options;
  auto request = std::make_shared<Request>(1, 3, 100);
  LaneSet<RecordedMessage> lanes;
  RecordedMessage& message =
      lanes.add(std::make_unique<RecordedMessage>(8, request, true, 1, 3, 100, options));
  post_all(message);

  EXPECT_TRUE(message.fail_now(error(ErrorKind::kPeerLost, "lost rank 1")));
  ASSERT_TRUE(request->done());
  EXPECT_EQ(message_of(*request), "lost rank 1");
  // The link still owns the buffer until it hands it back: the message is not forgotten.
  EXPECT_FALSE(lanes.settle(8));
  ASSERT_NE(lanes.find(8), nullptr);

  // A late success of the piece changes nothing; the request is not ended twice.
  message.piece_done();
  message.release();
  EXPECT_TRUE(lanes.settle(8));
  EXPECT_EQ(message_of(*request), "lost rank 1");
}

TEST(LaneSet, ACanceledMessageWithNothingHeldFailsAtTheNextSettle) {
  const TransportOptions options = striping_options();
  auto request = std::make_shared<Request>(1, 4, 5000);
  LaneSet<RecordedMessage> lanes;
  lanes.add(std::make_unique<RecordedMessage>(3, request, true, 1, 4, 5000, options));
  RecordedMessage* message = lanes.find(3);
  ASSERT_NE(message, nullptr);
  // Queued but not yet given to the wire: cancel recalls every piece, nothing is held.
  EXPECT_TRUE(message->fail(error(ErrorKind::kCanceled, "canceled by its owner")));
  EXPECT_TRUE(lanes.settle(3));
  ASSERT_TRUE(request->done());
  EXPECT_EQ(message_of(*request), "canceled by its owner");
}

TEST(LaneSet, ReleaseAllLetsGoOfBuffersTheLinkNoLongerHas) {
  TransportOptions options;
  auto request = std::make_shared<Request>(1, 5, 10);
  LaneSet<RecordedMessage> lanes;
  RecordedMessage& message =
      lanes.add(std::make_unique<RecordedMessage>(2, request, true, 1, 5, 10, options));
  post_all(message);
  message.fail(error(ErrorKind::kAborted, "aborted"));
  EXPECT_TRUE(message.holds_buffers());
  message.release_all();  // the link's context is gone, and its buffers with it
  EXPECT_FALSE(message.holds_buffers());
  lanes.settle_all();
  EXPECT_TRUE(lanes.empty());
  EXPECT_EQ(message_of(*request), "aborted");
}

TEST(LaneSet, DescribesMessagesAsErrorsNameThem) {
  EXPECT_EQ(describe_message(true, 3, 5, 100), "send to rank 3 (tag 5, 100 bytes)");
  EXPECT_EQ(describe_message(false, kAnySource, 5, 0), "receive from any rank (tag 5, 0 bytes)");
}

}  // namespace
}  // namespace torchwan::transport::core
