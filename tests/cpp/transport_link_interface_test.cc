// What a link over several links (one that routes each peer to the link serving it) asks of each
// link beside the core's advance(): sleeping on another link's descriptor, an armed descriptor
// that tells of events, and which sender an any-source receive could take now. Real UCX and
// ZeroMQ links over loopback, driven directly (no progress thread): ranks connect on threads, then
// the test alone drives every link.
#include <gtest/gtest.h>
#include <poll.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include <chrono>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "test_support.h"
#include "transport/core/link.h"
#include "transport/store.h"
#include "transport/ucx/ucx_engine.h"
#include "transport/zmq/zmq_engine.h"

namespace torchwan::transport {
namespace {

using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;
using testing::loopback_options;
using testing::pattern_bytes;
using testing::run_on_threads;

// One rank's link and what the core would own around it.
struct LinkRank {
  explicit LinkRank(int size) : peers(size) {}
  core::PeerTable peers;
  core::Wakeup wakeup;
  std::unique_ptr<core::Link> link;
};

// `size` connected links of `kind`, made as LinkTransport's factories make them.
std::vector<std::unique_ptr<LinkRank>> connect_links(const std::string& kind, int size) {
  const TransportOptions options = loopback_options(kind, 2);
  MemoryStore store;
  std::vector<std::unique_ptr<LinkRank>> ranks;
  for (int rank = 0; rank < size; ++rank) ranks.push_back(std::make_unique<LinkRank>(size));
  run_on_threads(size, [&](int rank) {
    LinkRank& mine = *ranks[static_cast<size_t>(rank)];
    core::LinkSetup setup{options,
                          store,
                          rank,
                          size,
                          mine.peers,
                          mine.wakeup,
                          Clock::now() + options.connect_timeout};
    if (kind == "ucx") {
      auto engine = std::make_unique<ucx::Engine>(options, rank, size, mine.peers);
      engine->watch_fd(mine.wakeup.fd());
      engine->connect(store, setup.deadline);
      mine.link = std::move(engine);
    } else {
      mine.link = std::make_unique<zmq_detail::Engine>(setup);
    }
  });
  return ranks;
}

// Leaves on every rank at once: a leaving rank waits for its peers' goodbyes.
void leave_all(std::vector<std::unique_ptr<LinkRank>>& ranks) {
  run_on_threads(static_cast<int>(ranks.size()),
                 [&](int rank) { ranks[static_cast<size_t>(rank)]->link->leave(); });
}

// Rounds of progress on every link, without sleeping, until `done` or 10 s passed.
bool progress_until(std::vector<std::unique_ptr<LinkRank>>& ranks,
                    const std::function<bool()>& done) {
  const auto deadline = Clock::now() + 10s;
  while (!done()) {
    if (Clock::now() > deadline) return false;
    for (auto& rank : ranks) rank->link->progress_once();
  }
  return true;
}

core::PostedReceive any_source_receive(Tag tag, std::vector<uint8_t>& buffer) {
  return {nullptr, 0, kAnySource, tag, buffer.data(), buffer.size()};
}

std::shared_ptr<Request> send(LinkRank& from, uint64_t id, int to, Tag tag,
                              const std::vector<uint8_t>& bytes) {
  auto request = std::make_shared<Request>(to, tag, bytes.size());
  from.link->start_send({request, id, to, tag, bytes.data(), bytes.size()});
  return request;
}

std::shared_ptr<Request> receive(LinkRank& at, uint64_t id, int from, Tag tag,
                                 std::vector<uint8_t>& buffer) {
  auto request = std::make_shared<Request>(from, tag, buffer.size());
  at.link->start_receive({request, id, from, tag, buffer.data(), buffer.size()});
  return request;
}

class LinkInterface : public ::testing::TestWithParam<std::string> {};

TEST_P(LinkInterface, ClaimableSenderNamesTheSenderOfTheNextUnclaimedMessageWithTheTag) {
  auto ranks = connect_links(GetParam(), 3);
  LinkRank& receiver = *ranks[0];
  const size_t length = 4096;
  std::vector<uint8_t> buffer(length);
  auto claimable = [&](Tag tag) {
    return receiver.link->claimable_sender(any_source_receive(tag, buffer));
  };
  EXPECT_EQ(claimable(7), std::nullopt);

  // Rank 2's message has another tag (one that travels on the same lane): it is no answer for
  // tag 7.
  const auto other_tag = pattern_bytes(length, 1);
  auto sent_other = send(*ranks[2], 1, 0, 9, other_tag);
  ASSERT_TRUE(progress_until(ranks, [&] { return claimable(9).has_value(); }));
  EXPECT_EQ(claimable(9), std::optional<int>(2));
  EXPECT_EQ(claimable(7), std::nullopt);

  // Rank 1's two messages with tag 7: the first is claimable, and an exact receive started from
  // the sender named takes it; then the second.
  const auto first = pattern_bytes(length, 2);
  const auto second = pattern_bytes(length, 3);
  auto sent_first = send(*ranks[1], 1, 0, 7, first);
  auto sent_second = send(*ranks[1], 2, 0, 7, second);
  ASSERT_TRUE(progress_until(ranks, [&] { return claimable(7).has_value(); }));
  ASSERT_EQ(claimable(7), std::optional<int>(1));
  auto got_first = receive(receiver, 10, 1, 7, buffer);
  ASSERT_TRUE(progress_until(ranks, [&] { return got_first->done(); }));
  got_first->wait(0ms);
  EXPECT_EQ(buffer, first) << "the exact receive from the sender named did not take its first";

  ASSERT_TRUE(progress_until(ranks, [&] { return claimable(7).has_value(); }));
  ASSERT_EQ(claimable(7), std::optional<int>(1));
  auto got_second = receive(receiver, 11, 1, 7, buffer);
  ASSERT_TRUE(progress_until(ranks, [&] { return got_second->done(); }));
  got_second->wait(0ms);
  EXPECT_EQ(buffer, second);
  EXPECT_EQ(claimable(7), std::nullopt);

  // A message whose exact receive was posted first is that receive's, never claimable.
  auto posted_first = receive(receiver, 12, 1, 11, buffer);
  auto sent_third = send(*ranks[1], 3, 0, 11, first);
  ASSERT_TRUE(progress_until(ranks, [&] { return posted_first->done(); }));
  EXPECT_EQ(claimable(11), std::nullopt);
  EXPECT_EQ(buffer, first);

  auto got_other = receive(receiver, 13, 2, 9, buffer);
  ASSERT_TRUE(progress_until(ranks, [&] {
    return got_other->done() && sent_other->done() && sent_first->done() && sent_second->done() &&
           sent_third->done();
  }));
  EXPECT_EQ(buffer, other_tag);
  leave_all(ranks);
}

TEST_P(LinkInterface, SleepWakesForAnExtraDescriptor) {
  auto ranks = connect_links(GetParam(), 2);
  core::Link& link = *ranks[0]->link;
  const int event = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
  ASSERT_GE(event, 0);
  std::thread signaller([event] {
    std::this_thread::sleep_for(50ms);
    const uint64_t one = 1;
    EXPECT_EQ(write(event, &one, sizeof(one)), static_cast<ssize_t>(sizeof(one)));
  });
  // ZeroMQ would sleep the caller's 5 s without the descriptor among its poll items. UCX bounds
  // every sleep by its liveness timers (a tenth of a second), so there the run shows only that the
  // extra descriptor does no harm; ArmedEventDescriptor... below covers UCX's side.
  const auto start = Clock::now();
  while (Clock::now() - start < 5s) {
    pollfd item{event, POLLIN, 0};
    if (poll(&item, 1, 0) == 1) break;
    if (!link.progress_once() && link.prepare_to_sleep()) link.sleep({event}, 5000ms);
  }
  const auto slept = Clock::now() - start;
  signaller.join();
  EXPECT_LT(slept, 1s) << "the sleep did not end when the extra descriptor turned readable";
  close(event);
  leave_all(ranks);
}

INSTANTIATE_TEST_SUITE_P(Links, LinkInterface, ::testing::Values("ucx", "zmq"),
                         [](const auto& info) { return info.param; });

// UCX's armed epoll descriptor is what another link sleeps on: it must turn readable when a
// message arrives, and stay readable until the link progresses.
TEST(LinkInterfaceUcx, ArmedEventDescriptorTurnsReadableWhenAMessageArrives) {
  auto ranks = connect_links("ucx", 2);
  core::Link& receiver = *ranks[0]->link;
  while (receiver.progress_once()) {
  }
  ASSERT_TRUE(receiver.prepare_to_sleep());
  const std::optional<int> descriptor = receiver.event_descriptor();
  ASSERT_TRUE(descriptor.has_value());
  pollfd item{*descriptor, POLLIN, 0};
  EXPECT_EQ(poll(&item, 1, 0), 0) << "readable although nothing arrived";

  const auto bytes = pattern_bytes(1024, 4);
  auto sent = send(*ranks[1], 1, 0, 3, bytes);
  const auto deadline = Clock::now() + 10s;
  bool readable = false;
  while (!readable && Clock::now() < deadline) {
    ranks[1]->link->progress_once();
    item.revents = 0;
    readable = poll(&item, 1, 10) == 1;
  }
  EXPECT_TRUE(readable) << "the armed descriptor never told of the message";
  item.revents = 0;
  EXPECT_EQ(poll(&item, 1, 0), 1) << "the descriptor is not level-triggered";

  std::vector<uint8_t> buffer(bytes.size());
  auto got = receive(*ranks[0], 10, 1, 3, buffer);
  ASSERT_TRUE(progress_until(ranks, [&] { return got->done() && sent->done(); }));
  EXPECT_EQ(buffer, bytes);
  leave_all(ranks);
}

}  // namespace
}  // namespace torchwan::transport
