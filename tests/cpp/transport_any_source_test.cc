// The any-source receives both links keep (transport/core/any_source.h): receives of one tag are
// offered oldest first and stop at the first that finds no sender, a matched receive learns its
// sender, a receive whose callback posts the next one matches inside the same call, and cancel
// and fail_all fail exactly the receives that wait.
#include <gtest/gtest.h>

#include <optional>
#include <vector>

#include "transport/core/any_source.h"
#include "transport/errors.h"

namespace torchwan::transport::core {
namespace {

ErrorKind kind_of(const Request& request) {
  try {
    std::rethrow_exception(request.error());
  } catch (const TransportError& error) {
    return error.kind();
  }
}

PostedReceive receive(uint64_t id, Tag tag, Request::Callback callback = {}) {
  return {std::make_shared<Request>(kAnySource, tag, 4, std::move(callback)),
          id,
          kAnySource,
          tag,
          nullptr,
          4};
}

TEST(AnySourceReceives, OneTagMatchesOldestFirstAndStopsAtTheFirstWithoutSender) {
  AnySourceReceives waiting("test");
  for (uint64_t id = 1; id <= 3; ++id) waiting.add(receive(id, 7));
  waiting.add(receive(4, 8));
  std::vector<int> senders = {2};  // one message from rank 2 is there for tag 7
  std::vector<PostedReceive> started;
  auto find = [&](const PostedReceive&) -> std::optional<int> {
    if (senders.empty()) return std::nullopt;
    const int sender = senders.back();
    senders.pop_back();
    return sender;
  };
  auto start = [&](PostedReceive matched) { started.push_back(std::move(matched)); };
  EXPECT_TRUE(waiting.match(Tag{7}, find, start));
  ASSERT_EQ(started.size(), 1u);
  EXPECT_EQ(started[0].id, 1u);
  EXPECT_EQ(started[0].peer, 2);
  EXPECT_EQ(started[0].request->source(), 2);
  EXPECT_EQ(waiting.size(), 3u);
  // Every tag: tag 7's receives 2 and 3, then tag 8's receive 4.
  senders = {3, 1, 1};
  EXPECT_TRUE(waiting.match(std::nullopt, find, start));
  ASSERT_EQ(started.size(), 4u);
  EXPECT_EQ(started[1].id, 2u);
  EXPECT_EQ(started[2].id, 3u);
  EXPECT_EQ(started[3].id, 4u);
  EXPECT_EQ(started[3].peer, 3);
  EXPECT_TRUE(waiting.empty());
  EXPECT_FALSE(waiting.match(std::nullopt, find, start));
}

TEST(AnySourceReceives, ACallbackThatPostsTheNextReceiveMatchesInTheSameCall) {
  AnySourceReceives waiting("test");
  int completed = 0;
  waiting.add(receive(1, 5, [&](Request&) {
    ++completed;
    waiting.add(receive(2, 5, [&](Request&) { ++completed; }));
  }));
  int messages = 2;
  auto find = [&](const PostedReceive&) -> std::optional<int> {
    if (messages == 0) return std::nullopt;
    --messages;
    return 1;
  };
  // Starting completes the receive at once, as a message that is already whole does.
  auto start = [](PostedReceive matched) {
    matched.request->expect_parts(1);
    matched.request->complete_part();
  };
  EXPECT_TRUE(waiting.match(Tag{5}, find, start));
  EXPECT_EQ(completed, 2);
  EXPECT_TRUE(waiting.empty());
}

TEST(AnySourceReceives, CancelAndFailAllFailOnlyWhatWaits) {
  AnySourceReceives waiting("rank 0");
  PostedReceive first = receive(1, 3);
  PostedReceive second = receive(2, 3);
  PostedReceive third = receive(3, 4);
  auto first_request = first.request;
  auto second_request = second.request;
  auto third_request = third.request;
  waiting.add(std::move(first));
  waiting.add(std::move(second));
  waiting.add(std::move(third));
  EXPECT_TRUE(waiting.cancel(2));
  EXPECT_FALSE(waiting.cancel(2));
  EXPECT_FALSE(waiting.cancel(99));
  ASSERT_TRUE(second_request->done());
  EXPECT_EQ(kind_of(*second_request), ErrorKind::kCanceled);
  EXPECT_FALSE(first_request->done());
  waiting.fail_all(
      std::make_exception_ptr(TransportError(ErrorKind::kAborted, "stopped", kAnySource)));
  ASSERT_TRUE(first_request->done());
  ASSERT_TRUE(third_request->done());
  EXPECT_EQ(kind_of(*first_request), ErrorKind::kAborted);
  EXPECT_EQ(kind_of(*third_request), ErrorKind::kAborted);
  EXPECT_TRUE(waiting.empty());
}

}  // namespace
}  // namespace torchwan::transport::core
