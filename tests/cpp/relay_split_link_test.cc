// The core's SplitLink on real links: a UCX link serving the pairs it connects and a ZeroMQ link
// whose pair of undialable ranks goes through a real torchwan relay (in-process, on its own
// thread), under one LinkTransport per rank, over real loopback sockets. Ranks 0 and 1 are made
// undialable on the ZeroMQ side as relay_rung_test does (HidingStore), so that link reaches them
// only through the relay; the SplitLink sends their pair over it and every other pair over UCX.
#include <gtest/gtest.h>

#include <chrono>
#include <memory>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "relay/relay_server.h"
#include "test_support.h"
#include "transport/core/link_transport.h"
#include "transport/core/split_link.h"
#include "transport/secure/job_secret.h"
#include "transport/ucx/ucx_engine.h"
#include "transport/zmq/zmq_engine.h"
#include "zmq_ladder_support.h"

namespace torchwan {
namespace {

using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;
using testing::exchange_everywhere;
using testing::expect_links;
using testing::failure_of;
using testing::HidingStore;
using testing::pattern_bytes;
using testing::run_on_threads;
using testing::seconds_since;
using transport::ErrorKind;
using transport::LinkRung;
using transport::Transport;

// The pair that only the relay connects.
bool relayed_pair(int a, int b) { return (a == 0 && b == 1) || (a == 1 && b == 0); }

// A group of LinkTransports whose links are SplitLinks: UCX for every pair but (0, 1), which
// goes through the ZeroMQ link and its relay.
struct SplitJob {
  testing::SecretDir secrets;
  std::string secret = secrets.create("job.key");
  std::unique_ptr<relay::RelayServer> relay;
  transport::MemoryStore ucx_store;
  HidingStore zmq_store{{0, 1}};

  SplitJob() {
    relay::RelayOptions relay_options;
    relay_options.host = "127.0.0.1";
    relay_options.window_bytes = 1u << 20;
    relay_options.max_chunk_bytes = 64u << 10;
    relay_options.secret = security::JobSecret::load_file(secret);
    relay = std::make_unique<relay::RelayServer>(relay_options);
    relay->start();
  }

  transport::TransportOptions options(int lanes) const {
    auto options = testing::loopback_options("ucx", lanes);
    options.relay = "127.0.0.1:" + std::to_string(relay->port());
    options.secret_file = secret;
    options.connect_timeout = 20s;
    options.peer_timeout = 3s;
    return options;
  }

  std::unique_ptr<Transport> make_rank(int rank, int size, int lanes) {
    auto factory = [this, rank, size](transport::core::LinkSetup& setup) {
      auto ucx = std::make_unique<transport::ucx::Engine>(setup.options, rank, size, setup.peers);
      ucx->watch_fd(setup.wakeup.fd());
      ucx->connect(setup.store, setup.deadline);
      transport::core::LinkSetup zmq_setup{setup.options, zmq_store,    rank,          size,
                                           setup.peers,   setup.wakeup, setup.deadline};
      auto zmq = std::make_unique<transport::zmq_detail::Engine>(zmq_setup);
      std::vector<bool> served_by_relay(static_cast<size_t>(size));
      for (int peer = 0; peer < size; ++peer) {
        served_by_relay[static_cast<size_t>(peer)] = relayed_pair(rank, peer);
      }
      return std::make_unique<transport::core::SplitLink>(std::move(ucx), std::move(zmq),
                                                          std::move(served_by_relay),
                                                          "split rank " + std::to_string(rank));
    };
    return std::make_unique<transport::core::LinkTransport>(
        "split", "split rank " + std::to_string(rank), options(lanes), ucx_store, rank, size,
        factory);
  }

  std::vector<std::unique_ptr<Transport>> connect(int size, int lanes) {
    std::vector<std::unique_ptr<Transport>> ranks(static_cast<size_t>(size));
    run_on_threads(
        size, [&](int rank) { ranks[static_cast<size_t>(rank)] = make_rank(rank, size, lanes); });
    return ranks;
  }
};

TEST(SplitLinkRelay, EachPairGoesOverItsLinkByteExactAndLeavingDeliversWhatWasSent) {
  SplitJob job;
  auto ranks = job.connect(3, 2);
  const std::vector<std::vector<LinkRung>> expected = {
      {LinkRung::kDirect, LinkRung::kRelay, LinkRung::kDirect},
      {LinkRung::kRelay, LinkRung::kDirect, LinkRung::kDirect},
      {LinkRung::kDirect, LinkRung::kDirect, LinkRung::kDirect}};
  expect_links(ranks, expected);
  exchange_everywhere(ranks);
  // One sleep waits on both links: a message over UCX wakes a rank at once, not when ZeroMQ or
  // UCX's liveness tick (a tenth of a second) next wakes it.
  std::vector<uint8_t> ball(1);
  const auto rallies_start = Clock::now();
  for (int rally = 0; rally < 20; ++rally) {
    auto back = ranks[0]->irecv(2, 30, ball.data(), ball.size());
    auto there = ranks[2]->irecv(0, 31, ball.data(), ball.size());
    ranks[0]->isend(2, 31, ball.data(), ball.size())->wait(10s);
    there->wait(10s);
    ranks[2]->isend(0, 30, ball.data(), ball.size())->wait(10s);
    back->wait(10s);
  }
  EXPECT_LT(seconds_since(rallies_start), 1.0) << "20 round trips over UCX";
  // 9 MiB each way between ranks 0 and 1 crossed the relay, and nothing of the other pairs.
  const auto stats = job.relay->stats();
  EXPECT_GT(stats.forwarded_bytes, 2u * (9u << 20));
  EXPECT_LT(stats.forwarded_bytes, 2u * (10u << 20));

  // Leaving delivers what was sent over both links: rank 0 leaves right after its sends.
  const auto relayed = pattern_bytes(3 << 20, 9);
  const auto direct = pattern_bytes(3 << 20, 10);
  std::vector<uint8_t> got_relayed(relayed.size()), got_direct(direct.size());
  auto receive_relayed = ranks[1]->irecv(0, 8, got_relayed.data(), got_relayed.size());
  auto receive_direct = ranks[2]->irecv(0, 8, got_direct.data(), got_direct.size());
  ranks[0]->isend(1, 8, relayed.data(), relayed.size());
  ranks[0]->isend(2, 8, direct.data(), direct.size());
  ranks[0].reset();
  receive_relayed->wait(20s);
  receive_direct->wait(20s);
  EXPECT_TRUE(got_relayed == relayed);
  EXPECT_TRUE(got_direct == direct);
}

TEST(SplitLinkRelay, AnySourceReceivesTakeARelayedAndADirectSenderInTheirOrder) {
  SplitJob job;
  auto ranks = job.connect(3, 2);
  const size_t length = 200'000;
  // Rank 1 (through the relay) sends two messages, rank 2 (over UCX) one, all with tag 21.
  const auto first_of_1 = pattern_bytes(length, 1);
  const auto second_of_1 = pattern_bytes(length, 2);
  const auto from_2 = pattern_bytes(length, 3);
  auto sent_1a = ranks[1]->isend(0, 21, first_of_1.data(), length);
  auto sent_1b = ranks[1]->isend(0, 21, second_of_1.data(), length);
  auto sent_2 = ranks[2]->isend(0, 21, from_2.data(), length);
  std::vector<std::vector<uint8_t>> got(3, std::vector<uint8_t>(length));
  std::vector<std::shared_ptr<transport::Request>> receives;
  for (auto& buffer : got) receives.push_back(ranks[0]->irecv_any(21, buffer.data(), length));
  std::vector<int> sources;
  std::vector<std::vector<uint8_t>> from_1;
  for (size_t i = 0; i < receives.size(); ++i) {
    receives[i]->wait(20s);
    sources.push_back(receives[i]->source());
    if (receives[i]->source() == 1) from_1.push_back(got[i]);
    if (receives[i]->source() == 2) {
      EXPECT_TRUE(got[i] == from_2) << "receive " << i;
    }
  }
  EXPECT_EQ(std::multiset<int>(sources.begin(), sources.end()), (std::multiset<int>{1, 1, 2}));
  ASSERT_EQ(from_1.size(), 2u);
  EXPECT_TRUE(from_1[0] == first_of_1) << "rank 1's messages matched out of order";
  EXPECT_TRUE(from_1[1] == second_of_1) << "rank 1's messages matched out of order";
  for (auto& sent : {sent_1a, sent_1b, sent_2}) sent->wait(20s);

  // An any-source receive posted before anything arrives takes whichever comes.
  std::vector<uint8_t> early(length);
  auto waiting = ranks[0]->irecv_any(22, early.data(), length);
  ranks[1]->isend(0, 22, from_2.data(), length)->wait(20s);
  waiting->wait(20s);
  EXPECT_EQ(waiting->source(), 1);
  EXPECT_TRUE(early == from_2);
}

TEST(SplitLinkRelay, APeerBehindAStoppedRelayIsLostWithinThePeerTimeoutAndUcxGoesOn) {
  SplitJob job;
  auto ranks = job.connect(3, 1);
  ASSERT_EQ(ranks[0]->links()[1], LinkRung::kRelay);
  std::vector<uint8_t> buffer(1000);
  auto waiting = ranks[0]->irecv(1, 3, buffer.data(), buffer.size());
  const auto start = Clock::now();
  job.relay->stop();
  failure_of(*waiting, ErrorKind::kPeerLost, 15s);
  // peer_timeout is 3 s; silence is noticed within it plus a heartbeat interval.
  EXPECT_LT(seconds_since(start), 5.0);
  // The pairs over UCX are untouched, even after an idle stretch longer than peer_timeout: UCX's
  // heartbeats went on although each rank slept in ZeroMQ's poll.
  std::this_thread::sleep_for(2s);
  const auto data = pattern_bytes(100'000, 4);
  std::vector<uint8_t> got(data.size());
  auto receive = ranks[2]->irecv(0, 4, got.data(), got.size());
  ranks[0]->isend(2, 4, data.data(), data.size())->wait(10s);
  receive->wait(10s);
  EXPECT_TRUE(got == data);
}

}  // namespace
}  // namespace torchwan
