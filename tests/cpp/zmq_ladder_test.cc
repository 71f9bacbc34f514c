// The ZeroMQ link's connection ladder (docs/reachability.md) on loopback: real transports, real
// sockets. A rank that cannot be dialed is made by rewriting the address record it publishes so
// that its candidate host is one where nothing listens (its ROUTERs listen on 127.0.0.1 only), as
// a NATed host's private address is to a peer outside.
#include <gtest/gtest.h>

#include <chrono>
#include <memory>
#include <set>
#include <string>
#include <thread>
#include <vector>
#include <zmq.hpp>

#include "test_support.h"
#include "transport/secure/data_auth.h"
#include "transport/store.h"
#include "transport/transport.h"
#include "transport/zmq/zmq_records.h"
#include "zmq_ladder_support.h"

namespace torchwan {
namespace {

using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;
using testing::connect_each;
using testing::loopback_options;
using testing::pattern_bytes;
using testing::run_on_threads;
using testing::take_transports;
using transport::ErrorKind;
using transport::LinkRung;
using transport::Transport;
using transport::TransportError;
namespace wire = transport::zmq_detail;
using testing::contains;
using testing::exchange_everywhere;
using testing::expect_links;
using testing::HidingStore;
using testing::kUnreachableHost;
using testing::seconds_since;

TEST(ZmqWire, AddressRecordsRoundTripAndNameTheirMalformedField) {
  const wire::AddressRecord record{{"10.0.0.7", "192.168.1.3", "fe80::1%eth0"}, {5000, 5001}};
  std::string why;
  const auto decoded = wire::decode_address_record(wire::encode_address_record(record), why);
  ASSERT_TRUE(decoded) << why;
  EXPECT_EQ(*decoded, record);
  EXPECT_EQ(decoded->endpoint(1, 1), "tcp://192.168.1.3:5001");
  EXPECT_EQ(decoded->endpoint(2, 0), "tcp://[fe80::1%eth0]:5000");
  EXPECT_EQ(wire::address_key(7), "tw/zmq/7");

  auto complaint = [](const wire::AddressRecord& bad) {
    std::string why;
    EXPECT_FALSE(wire::decode_address_record(wire::encode_address_record(bad), why));
    return why;
  };
  EXPECT_TRUE(contains(complaint({{}, {5000}}), "host count")) << complaint({{}, {5000}});
  EXPECT_TRUE(contains(complaint({{"a/b"}, {5000}}), "host")) << complaint({{"a/b"}, {5000}});
  EXPECT_TRUE(contains(complaint({{"h"}, {}}), "lane count")) << complaint({{"h"}, {}});
  EXPECT_TRUE(contains(complaint({{"h"}, {5000, 0}}), "lane port"));

  // The text record of earlier versions, and a cut record, are refused by name.
  const std::string old_text = "torchwan-zmq 1\ntcp://10.0.0.1:5000\n";
  EXPECT_FALSE(wire::decode_address_record({old_text.begin(), old_text.end()}, why));
  EXPECT_TRUE(contains(why, "magic")) << why;
  auto bytes = wire::encode_address_record(record);
  for (size_t cut = 0; cut < bytes.size(); ++cut) {
    EXPECT_FALSE(wire::decode_address_record({bytes.begin(), bytes.begin() + cut}, why)) << cut;
  }
  bytes.push_back(0);
  EXPECT_FALSE(wire::decode_address_record(bytes, why));
}

TEST(ZmqWire, ReachRecordsRoundTripAndRefuseImpossibleClaims) {
  const wire::ReachRecord record{2, {1, 0, 0, 1}};
  std::string why;
  const auto decoded = wire::decode_reach_record(wire::encode_reach_record(record), why);
  ASSERT_TRUE(decoded) << why;
  EXPECT_EQ(*decoded, record);
  EXPECT_FALSE(wire::decode_reach_record(wire::encode_reach_record({2, {0, 0, 1, 0}}), why));
  EXPECT_TRUE(contains(why, "itself")) << why;
  EXPECT_FALSE(wire::decode_reach_record(wire::encode_reach_record({4, {0, 1}}), why));
  EXPECT_TRUE(contains(why, "rank count")) << why;
  auto bytes = wire::encode_reach_record(record);
  bytes.back() = 7;
  EXPECT_FALSE(wire::decode_reach_record(bytes, why));
  EXPECT_TRUE(contains(why, "reached")) << why;

  EXPECT_EQ(wire::decide_rung(true, true), LinkRung::kDirect);
  EXPECT_EQ(wire::decide_rung(true, false), LinkRung::kReverse);
  EXPECT_EQ(wire::decide_rung(false, true), LinkRung::kReverse);
  EXPECT_FALSE(wire::decide_rung(false, false));
}

TEST(ZmqLadder, EveryPairIsDirectWhenEveryoneCanBeDialed) {
  HidingStore store({});
  auto outcomes = connect_each(
      3, [](int) { return loopback_options("zmq", 2); }, store);
  auto ranks = take_transports(outcomes);
  for (int rank = 0; rank < 3; ++rank) {
    const auto links = ranks[static_cast<size_t>(rank)]->links();
    ASSERT_EQ(links.size(), 3u);
    for (int peer = 0; peer < 3; ++peer) {
      if (peer != rank) {
        EXPECT_EQ(links[static_cast<size_t>(peer)], LinkRung::kDirect);
      }
    }
  }
  exchange_everywhere(ranks);
}

class ZmqLadderLanes : public ::testing::TestWithParam<int> {};

TEST_P(ZmqLadderLanes, ARankNobodyCanDialTalksOverTheConnectionsItDialed) {
  HidingStore store({1});
  auto outcomes = connect_each(
      3, [](int) { return loopback_options("zmq", GetParam()); }, store);
  auto ranks = take_transports(outcomes);
  // Rank 1 reached both others, neither reached it: both its pairs are reverse, on both sides;
  // 0 and 2 reach each other directly.
  const std::vector<std::vector<LinkRung>> expected = {
      {LinkRung::kDirect, LinkRung::kReverse, LinkRung::kDirect},
      {LinkRung::kReverse, LinkRung::kDirect, LinkRung::kReverse},
      {LinkRung::kDirect, LinkRung::kReverse, LinkRung::kDirect}};
  expect_links(ranks, expected);
  exchange_everywhere(ranks);

  // Leaving still delivers what was sent, and quickly: the goodbyes and their acknowledgements
  // travel on the reverse connections too.
  const auto data = pattern_bytes(3 << 20, 9);
  std::vector<uint8_t> got(data.size());
  auto recv = ranks[1]->irecv(0, 8, got.data(), got.size());
  ranks[0]->isend(1, 8, data.data(), data.size())->wait(20s);
  const auto start = Clock::now();
  ranks[0].reset();
  EXPECT_LT(seconds_since(start), 1.5);
  recv->wait(20s);
  EXPECT_TRUE(got == data);
  // Rank 1 saw rank 0 leave: a later receive from it fails at once.
  std::vector<uint8_t> more(4);
  const auto deadline = Clock::now() + 10s;
  std::optional<TransportError> error;
  while (!error && Clock::now() < deadline) {
    try {
      ranks[1]->irecv(0, 9, more.data(), more.size())->wait(1s);
    } catch (const TransportError& failure) {
      if (failure.kind() != ErrorKind::kTimeout) error = failure;
    }
  }
  ASSERT_TRUE(error);
  EXPECT_EQ(error->kind(), ErrorKind::kPeerLost) << error->what();
  // The others still talk.
  std::vector<uint8_t> between(data.size());
  auto to_two = ranks[2]->irecv(1, 10, between.data(), between.size());
  ranks[1]->isend(2, 10, data.data(), data.size())->wait(20s);
  to_two->wait(20s);
  EXPECT_TRUE(between == data);
}

INSTANTIATE_TEST_SUITE_P(Lanes, ZmqLadderLanes, ::testing::Values(1, 3));

TEST(ZmqLadder, AKilledReversePeerIsLost) {
  HidingStore store({1});
  auto outcomes = connect_each(
      2, [](int) { return loopback_options("zmq", 2); }, store);
  auto ranks = take_transports(outcomes);
  ASSERT_EQ(ranks[0]->links()[1], LinkRung::kReverse);
  std::vector<uint8_t> never(16);
  auto waiting = ranks[0]->irecv(1, 1, never.data(), never.size());
  ranks[1]->abort("test");
  ranks[1].reset();
  try {
    waiting->wait(10s);
    FAIL() << "a receive from an aborted reverse peer completed";
  } catch (const TransportError& error) {
    EXPECT_EQ(error.kind(), ErrorKind::kPeerLost) << error.what();
  }
}

TEST(ZmqLadder, APairNoRungConnectsFailsNamingBothRanksAndTheirAddresses) {
  HidingStore store({0, 1});
  const auto start = Clock::now();
  auto options = loopback_options("zmq", 1);
  options.connect_timeout = 4s;
  auto outcomes = connect_each(
      2, [&](int) { return options; }, store);
  EXPECT_LT(seconds_since(start), 4.5);
  for (int rank = 0; rank < 2; ++rank) {
    const auto& error = outcomes[static_cast<size_t>(rank)].error;
    ASSERT_TRUE(error) << "rank " << rank << " connected";
    EXPECT_EQ(error->kind(), ErrorKind::kBootstrap);
    const std::string text = error->what();
    EXPECT_TRUE(contains(text, "rank 0 could not connect to rank 1 at [tcp://127.0.0.2:")) << text;
    EXPECT_TRUE(contains(text, "rank 1 could not connect to rank 0 at [tcp://127.0.0.2:")) << text;
    EXPECT_TRUE(contains(text, "no relay")) << text;
  }
}

TEST(ZmqLadder, AReachRecordThatIsMalformedOrSpeaksForAnotherRankFailsCreationNamingIt) {
  struct Case {
    std::vector<uint8_t> record;
    std::string expected;
  };
  const std::vector<Case> cases = {
      {{1, 2, 3}, "published an invalid reach record under 'tw/zmq/reach/1': malformed"},
      {wire::encode_reach_record({0, {0, 1}}), "it speaks for rank 0 of a 2-rank group"},
      {wire::encode_reach_record({1, {1, 0, 0}}), "it speaks for rank 1 of a 3-rank group"},
  };
  for (const Case& bad : cases) {
    transport::MemoryStore store;
    // Rank 1 is played by hand: a listening ROUTER, its records, and the bad reach record.
    ::zmq::context_t context;
    ::zmq::socket_t router(context, ::zmq::socket_type::router);
    router.set(::zmq::sockopt::linger, 0);
    router.bind("tcp://127.0.0.1:*");
    const std::string bound = router.get(::zmq::sockopt::last_endpoint);
    const auto port = static_cast<uint16_t>(std::stoi(bound.substr(bound.rfind(':') + 1)));
    transport::DataAuth(transport::TransportOptions{}, 1, 2, "hand-rolled rank 1").publish(store);
    store.set(wire::address_key(1), wire::encode_address_record({{"127.0.0.1"}, {port}}));
    store.set(wire::reach_key(1), bad.record);
    auto options = loopback_options("zmq", 1);
    options.connect_timeout = 3s;
    try {
      Transport::create(options, store, 0, 2);
      FAIL() << "created a group with the reach record of case '" << bad.expected << "'";
    } catch (const TransportError& error) {
      EXPECT_EQ(error.kind(), ErrorKind::kBootstrap);
      EXPECT_TRUE(contains(error.what(), bad.expected)) << error.what();
    }
  }
}

}  // namespace
}  // namespace torchwan
