// What the core's LinkTransport promises on every link: abort() returns once the pending requests
// failed, an abort from a completion callback (on the progress thread) does not wait for itself,
// and requests posted to a lost peer or an aborted transport fail at once on the caller's thread,
// naming why. Ranks are threads over real loopback sockets.
#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <future>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "test_support.h"
#include "transport/transport.h"

namespace torchwan::transport {
namespace {

using namespace std::chrono_literals;
using testing::connect_ranks;
using testing::loopback_options;
using Clock = std::chrono::steady_clock;

class LinkCore : public ::testing::TestWithParam<std::string> {};

// The error a finished request failed with; fails the test when it did not fail.
std::string failure_text(Request& request, ErrorKind expected_kind) {
  try {
    request.wait(0ms);
  } catch (const TransportError& error) {
    EXPECT_EQ(error.kind(), expected_kind) << error.what();
    return error.what();
  }
  ADD_FAILURE() << "the request did not fail";
  return "";
}

TEST_P(LinkCore, AbortReturnsOnceThePendingRequestsFailed) {
  auto ranks = connect_ranks(loopback_options(GetParam(), 2), 2);
  std::vector<uint8_t> buffer(64);
  std::vector<std::shared_ptr<Request>> pending;
  for (Tag tag = 1; tag <= 8; ++tag) {
    pending.push_back(ranks[0]->irecv(1, tag, buffer.data(), buffer.size()));
  }
  pending.push_back(ranks[0]->irecv_any(9, buffer.data(), buffer.size()));

  ranks[0]->abort("stop now");
  for (auto& request : pending) {
    ASSERT_TRUE(request->done()) << "abort() returned before its requests failed";
    const std::string text = failure_text(*request, ErrorKind::kAborted);
    EXPECT_NE(text.find("was aborted: stop now"), std::string::npos) << text;
  }
  // Later requests fail on the caller's thread, naming the abort.
  auto later = ranks[0]->isend(1, 20, buffer.data(), buffer.size());
  ASSERT_TRUE(later->done());
  const std::string text = failure_text(*later, ErrorKind::kAborted);
  EXPECT_NE(text.find("refused: transport aborted"), std::string::npos) << text;
}

TEST_P(LinkCore, AbortFromACompletionCallbackDoesNotWaitForItself) {
  auto ranks = connect_ranks(loopback_options(GetParam(), 2), 2);
  std::vector<uint8_t> first(32), second(32), payload(32, 7);
  std::promise<Clock::duration> abort_took;
  Transport& rank0 = *ranks[0];
  auto trigger = ranks[0]->irecv(1, 1, first.data(), first.size(), [&](Request&) {
    const auto start = Clock::now();
    rank0.abort("abort from a callback");
    abort_took.set_value(Clock::now() - start);
  });
  auto bystander = ranks[0]->irecv(1, 2, second.data(), second.size());
  ranks[1]->isend(0, 1, payload.data(), payload.size())->wait(10s);

  auto took = abort_took.get_future();
  ASSERT_EQ(took.wait_for(10s), std::future_status::ready) << "the callback never returned";
  EXPECT_LT(took.get(), 1s);
  // The abort ran right after the callback's round: the bystander fails without any traffic.
  const auto deadline = Clock::now() + 5s;
  while (!bystander->done() && Clock::now() < deadline) std::this_thread::sleep_for(5ms);
  ASSERT_TRUE(bystander->done());
  const std::string text = failure_text(*bystander, ErrorKind::kAborted);
  EXPECT_NE(text.find("abort from a callback"), std::string::npos) << text;
}

TEST_P(LinkCore, SendsToALostPeerFailAtOnceNamingIt) {
  TransportOptions options = loopback_options(GetParam(), 2);
  auto ranks = connect_ranks(options, 3);
  std::atomic<int> lost{-1};
  ranks[0]->set_peer_failure_handler([&](int peer, const std::string&) { lost = peer; });
  ranks[2]->abort("leaving");
  const auto deadline = Clock::now() + 10s;
  while (lost.load() != 2 && Clock::now() < deadline) std::this_thread::sleep_for(5ms);
  ASSERT_EQ(lost.load(), 2) << "the abort's goodbye never reached rank 0";

  std::vector<uint8_t> buffer(16);
  auto send = ranks[0]->isend(2, 5, buffer.data(), buffer.size());
  ASSERT_TRUE(send->done()) << "a send to a lost peer must not reach the progress thread";
  const std::string text = failure_text(*send, ErrorKind::kPeerLost);
  EXPECT_NE(text.find("refused: rank 2 is lost"), std::string::npos) << text;
  // The rest of the group works on.
  std::vector<uint8_t> out(16, 3), in(16);
  auto receive = ranks[1]->irecv(0, 6, in.data(), in.size());
  ranks[0]->isend(1, 6, out.data(), out.size())->wait(10s);
  receive->wait(10s);
  EXPECT_EQ(in, out);
}

INSTANTIATE_TEST_SUITE_P(Links, LinkCore, ::testing::ValuesIn(testing::transport_kinds()),
                         [](const auto& info) { return info.param; });

}  // namespace
}  // namespace torchwan::transport
