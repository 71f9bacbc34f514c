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

// Each test adds one message to or from rank 1 to a lane set; `request` is what its user waits on.
class LaneSetTest : public ::testing::Test {
 protected:
  RecordedMessage& add(uint64_t id, bool is_send, Tag tag, size_t length,
                       const TransportOptions& options) {
    request = std::make_shared<Request>(1, tag, length);
    return lanes.add(
        std::make_unique<RecordedMessage>(id, request, is_send, 1, tag, length, options));
  }

  std::shared_ptr<Request> request;
  LaneSet<RecordedMessage> lanes;
};

TEST_F(LaneSetTest, CutsAMessageAsPlanPiecesDoesAndCompletesAfterTheLastPieceAndRelease) {
  const TransportOptions options = striping_options();
  RecordedMessage& message = add(11, /*is_send=*/true, 7, 2500, options);
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

TEST_F(LaneSetTest, WaitsForEveryPieceEvenWithNothingHeld) {
  // A link that copies small pieces holds nothing, yet the message is done only after each piece.
  RecordedMessage& message = add(1, /*is_send=*/true, 0, 0, TransportOptions());
  ASSERT_EQ(message.plan().size(), 1u);  // a zero-length message is one empty piece
  EXPECT_FALSE(lanes.settle(1));
  message.piece_done();
  EXPECT_TRUE(lanes.settle(1));
  EXPECT_TRUE(request->ok());
}

TEST_F(LaneSetTest, FailsOnceWithTheFirstErrorOnlyAfterEveryBufferIsReleased) {
  RecordedMessage& message = add(5, /*is_send=*/false, 2, 3000, striping_options());
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

TEST_F(LaneSetTest, FailNowEndsTheRequestAtOnceButKeepsTheMessageUntilReleased) {
  RecordedMessage& message = add(8, /*is_send=*/true, 3, 100, TransportOptions());
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

TEST_F(LaneSetTest, ACanceledMessageWithNothingHeldFailsAtTheNextSettle) {
  add(3, /*is_send=*/true, 4, 5000, striping_options());
  RecordedMessage* message = lanes.find(3);
  ASSERT_NE(message, nullptr);
  // Queued but not yet given to the wire: cancel recalls every piece, nothing is held.
  EXPECT_TRUE(message->fail(error(ErrorKind::kCanceled, "canceled by its owner")));
  EXPECT_TRUE(lanes.settle(3));
  ASSERT_TRUE(request->done());
  EXPECT_EQ(message_of(*request), "canceled by its owner");
}

TEST_F(LaneSetTest, ReleaseAllLetsGoOfBuffersTheLinkNoLongerHas) {
  RecordedMessage& message = add(2, /*is_send=*/true, 5, 10, TransportOptions());
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
