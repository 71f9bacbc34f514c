// The counting decorator counts exactly the completed messages and bytes, per peer, of exact and
// any-source receives, leaves failed requests uncounted, and passes callbacks through.
#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <cstdint>
#include <thread>
#include <vector>

#include "memory_transport.h"
#include "transport/counting_transport.h"

namespace torchwan {
namespace {

using transport::CountingTransport;

std::vector<std::unique_ptr<CountingTransport>> counted_ranks(int size) {
  std::vector<std::unique_ptr<CountingTransport>> ranks;
  for (auto& inner : testing::connect_memory_ranks(size)) {
    ranks.push_back(std::make_unique<CountingTransport>(std::move(inner)));
  }
  return ranks;
}

TEST(CountingTransport, CountsCompletedMessagesPerPeer) {
  auto ranks = counted_ranks(3);
  std::vector<uint8_t> small(100, 1), large(5000, 2), in_small(100), in_large(5000), in_any(100);
  std::atomic<int> callbacks{0};
  auto count_callback = [&callbacks](transport::Request&) { callbacks.fetch_add(1); };
  auto r1 = ranks[1]->irecv(0, 7, in_small.data(), in_small.size(), count_callback);
  auto r2 = ranks[2]->irecv(0, 7, in_large.data(), in_large.size());
  auto r3 = ranks[0]->irecv_any(9, in_any.data(), in_any.size(), count_callback);
  auto s1 = ranks[0]->isend(1, 7, small.data(), small.size(), count_callback);
  auto s2 = ranks[0]->isend(2, 7, large.data(), large.size());
  auto s3 = ranks[2]->isend(0, 9, small.data(), small.size());
  for (auto* request : {&r1, &r2, &r3, &s1, &s2, &s3}) (*request)->wait();
  // Callbacks run just after waiters are released (Request's rule); counting happens before.
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
  while (callbacks.load() < 3 && std::chrono::steady_clock::now() < deadline) {
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  EXPECT_EQ(callbacks.load(), 3);
  EXPECT_EQ(r3->source(), 2);

  const auto zero = ranks[0]->traffic();
  ASSERT_EQ(zero.size(), 3u);
  EXPECT_EQ(zero[1].bytes_sent, 100u);
  EXPECT_EQ(zero[1].messages_sent, 1u);
  EXPECT_EQ(zero[2].bytes_sent, 5000u);
  EXPECT_EQ(zero[2].bytes_received, 100u);  // the any-source receive, counted for its sender
  EXPECT_EQ(zero[2].messages_received, 1u);
  EXPECT_EQ(zero[1].bytes_received, 0u);
  EXPECT_EQ(ranks[1]->traffic()[0].bytes_received, 100u);
  EXPECT_EQ(ranks[2]->traffic()[0].bytes_received, 5000u);
  EXPECT_EQ(ranks[2]->traffic()[0].bytes_sent, 100u);
}

TEST(CountingTransport, CancelReachesTheInnerRequest) {
  auto ranks = counted_ranks(2);
  std::vector<uint8_t> buffer(64);
  auto pending = ranks[0]->irecv(1, 3, buffer.data(), buffer.size());
  pending->cancel();
  EXPECT_THROW(pending->wait(std::chrono::seconds(10)), transport::TransportError);
  // The canceled receive no longer matches: the next message goes to the next receive.
  std::vector<uint8_t> message(64, 5), received(64);
  auto next = ranks[0]->irecv(1, 3, received.data(), received.size());
  ranks[1]->isend(0, 3, message.data(), message.size())->wait();
  next->wait(std::chrono::seconds(10));
  EXPECT_EQ(received, message);
  EXPECT_EQ(ranks[0]->traffic()[1].messages_received, 1u);
}

TEST(CountingTransport, FailedRequestsAreNotCounted) {
  auto ranks = counted_ranks(2);
  std::vector<uint8_t> buffer(64);
  auto pending = ranks[0]->irecv(1, 3, buffer.data(), buffer.size());
  ranks[0]->abort("test abort");
  EXPECT_THROW(pending->wait(), transport::TransportError);
  EXPECT_EQ(ranks[0]->traffic()[1].messages_received, 0u);
  EXPECT_EQ(ranks[0]->traffic()[1].bytes_received, 0u);
}

}  // namespace
}  // namespace torchwan
