// Transport::irecv_any over the memory, UCX and ZeroMQ transports: the receive learns its sender,
// messages from one sender keep their order, exact receives posted first keep their messages, and
// cancel and size errors behave as for exact receives.
#include <gtest/gtest.h>

#include <algorithm>
#include <chrono>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "reduction_cases.h"
#include "test_support.h"
#include "transport/errors.h"

namespace torchwan::engine {
namespace {

using namespace test_data;
using namespace std::chrono_literals;
using transport::ErrorKind;
using transport::Request;
using transport::TransportError;

constexpr transport::Tag kTag = 77;

std::vector<uint8_t> message_of(int sender, int index, size_t bytes) {
  return testing::pattern_bytes(bytes, static_cast<uint32_t>(sender * 100 + index));
}

class AnySource : public KindAndSizeTest {
 protected:
  transport::Transport& rank(int r) {
    if (ranks_.empty()) ranks_ = make_group(kind(), size());
    return *ranks_[static_cast<size_t>(r)];
  }

  std::vector<std::unique_ptr<transport::Transport>> ranks_;
};

TEST_P(AnySource, EveryPeerReachesOneReceiverWhichLearnsTheSender) {
  if (size() < 2) GTEST_SKIP() << "needs senders";
  // Small, chunked on one lane, and striped over the lanes.
  for (size_t bytes : {size_t{0}, size_t{100}, (size_t{3} << 20) + 7}) {
    const auto senders = static_cast<size_t>(size() - 1);
    std::vector<std::vector<uint8_t>> buffers(senders, std::vector<uint8_t>(bytes + 1));
    std::vector<std::shared_ptr<Request>> receives;
    for (auto& buffer : buffers) receives.push_back(rank(0).irecv_any(kTag, buffer.data(), bytes));
    std::vector<std::vector<uint8_t>> sent(static_cast<size_t>(size()));
    std::vector<std::shared_ptr<Request>> sends;
    for (int sender = 1; sender < size(); ++sender) {
      sent[static_cast<size_t>(sender)] = message_of(sender, 0, bytes + 1);
      sends.push_back(rank(sender).isend(0, kTag, sent[static_cast<size_t>(sender)].data(), bytes));
    }
    std::set<int> sources;
    for (size_t i = 0; i < senders; ++i) {
      receives[i]->wait(20000ms);
      const int source = receives[i]->source();
      ASSERT_GE(source, 1);
      ASSERT_LT(source, size());
      EXPECT_EQ(receives[i]->peer(), transport::kAnySource);
      EXPECT_TRUE(std::equal(buffers[i].begin(), buffers[i].begin() + static_cast<long>(bytes),
                             sent[static_cast<size_t>(source)].begin()))
          << bytes << " bytes from rank " << source;
      sources.insert(source);
    }
    EXPECT_EQ(sources.size(), senders) << "two receives matched one sender";
    for (auto& send : sends) send->wait(20000ms);
  }
}

TEST_P(AnySource, MessagesOfOneSenderStayInOrderWhetherPostedBeforeOrAfter) {
  if (size() < 2) GTEST_SKIP() << "needs a sender";
  const int sender = size() - 1;
  for (bool post_first : {true, false}) {
    constexpr int kMessages = 4;
    std::vector<std::vector<uint8_t>> sent;
    std::vector<std::vector<uint8_t>> got(kMessages, std::vector<uint8_t>(64));
    std::vector<std::shared_ptr<Request>> receives;
    std::vector<std::shared_ptr<Request>> sends;
    auto post_receives = [&] {
      for (auto& buffer : got) receives.push_back(rank(0).irecv_any(kTag, buffer.data(), 64));
    };
    if (post_first) post_receives();
    for (int i = 0; i < kMessages; ++i) {
      sent.push_back(message_of(sender, i, 64));
      sends.push_back(rank(sender).isend(0, kTag, sent.back().data(), 64));
    }
    if (!post_first) {
      std::this_thread::sleep_for(100ms);  // let the messages arrive unexpected
      post_receives();
    }
    for (int i = 0; i < kMessages; ++i) {
      receives[static_cast<size_t>(i)]->wait(20000ms);
      EXPECT_EQ(receives[static_cast<size_t>(i)]->source(), sender);
      EXPECT_EQ(got[static_cast<size_t>(i)], sent[static_cast<size_t>(i)])
          << "message " << i << (post_first ? " (posted first)" : " (posted after)");
    }
    for (auto& send : sends) send->wait(20000ms);
  }
}

TEST_P(AnySource, ExactReceivePostedFirstKeepsItsMessage) {
  if (size() < 3) GTEST_SKIP() << "needs two senders";
  std::vector<uint8_t> exact_buffer(32), any_buffer(32);
  auto exact = rank(0).irecv(1, kTag, exact_buffer.data(), 32);
  auto any = rank(0).irecv_any(kTag, any_buffer.data(), 32);
  EXPECT_EQ(exact->source(), 1);
  const auto from_one = message_of(1, 0, 32);
  const auto from_two = message_of(2, 0, 32);
  auto send_one = rank(1).isend(0, kTag, from_one.data(), 32);
  std::this_thread::sleep_for(50ms);
  auto send_two = rank(2).isend(0, kTag, from_two.data(), 32);
  exact->wait(20000ms);
  any->wait(20000ms);
  EXPECT_EQ(exact_buffer, from_one);
  EXPECT_EQ(any->source(), 2);
  EXPECT_EQ(any_buffer, from_two);
  send_one->wait(20000ms);
  send_two->wait(20000ms);
}

TEST_P(AnySource, CanceledReceiveFailsAndTheNextOneGetsTheMessage) {
  if (size() < 2) GTEST_SKIP() << "needs a sender";
  std::vector<uint8_t> first(16), second(16);
  auto canceled = rank(0).irecv_any(kTag, first.data(), 16);
  std::this_thread::sleep_for(20ms);
  canceled->cancel();
  try {
    canceled->wait(5000ms);
    ADD_FAILURE() << "a canceled receive completed";
  } catch (const TransportError& error) {
    EXPECT_EQ(error.kind(), ErrorKind::kCanceled) << error.what();
  }
  const auto sent = message_of(1, 0, 16);
  auto send = rank(1).isend(0, kTag, sent.data(), 16);
  auto receive = rank(0).irecv_any(kTag, second.data(), 16);
  receive->wait(20000ms);
  EXPECT_EQ(receive->source(), 1);
  EXPECT_EQ(second, sent);
  send->wait(20000ms);
}

TEST_P(AnySource, WrongLengthFailsWithSizeMismatch) {
  if (size() < 2) GTEST_SKIP() << "needs a sender";
  std::vector<uint8_t> buffer(20);
  const auto sent = message_of(1, 0, 10);
  auto receive = rank(0).irecv_any(kTag, buffer.data(), 20);
  auto send = rank(1).isend(0, kTag, sent.data(), 10);
  try {
    receive->wait(20000ms);
    ADD_FAILURE() << "a 10-byte message completed a 20-byte receive";
  } catch (const TransportError& error) {
    EXPECT_EQ(error.kind(), ErrorKind::kSizeMismatch) << error.what();
  }
  try {
    send->wait(5000ms);
  } catch (const TransportError&) {
    // Whether the sender hears of the mismatch depends on the transport.
  }
}

TEST_P(AnySource, InvalidArgumentsThrow) {
  std::vector<uint8_t> buffer(8);
  EXPECT_THROW(rank(0).irecv_any(transport::kMaxTag, buffer.data(), 8), TransportError);
  EXPECT_THROW(rank(0).irecv_any(kTag, nullptr, 8), TransportError);
}

INSTANTIATE_TEST_SUITE_P(Transports, AnySource,
                         ::testing::Combine(::testing::Values("memory", "ucx", "zmq"),
                                            ::testing::Values(1, 2, 3, 5)),
                         kind_and_size_name);

}  // namespace
}  // namespace torchwan::engine
