// The relayed rung of the ZeroMQ link (docs/reachability.md) on loopback: real transports and a
// real torchwan relay (in-process, on its own thread), over real sockets. Ranks made undialable
// by the ladder's HidingStore cannot reach each other either way, as two hosts behind different
// NATs cannot, so only the relay connects them.
#include <gtest/gtest.h>

#include <chrono>
#include <memory>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "relay/relay_server.h"
#include "test_support.h"
#include "transport/secure/job_secret.h"
#include "transport/transport.h"
#include "transport/zmq/zmq_records.h"
#include "transport/zmq/zmq_relay_link.h"
#include "zmq_ladder_support.h"

namespace torchwan {
namespace {

using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;
using testing::connect_each;
using testing::contains;
using testing::exchange_everywhere;
using testing::expect_links;
using testing::failure_of;
using testing::HidingStore;
using testing::pattern_bytes;
using testing::seconds_since;
using testing::take_transports;
using transport::ErrorKind;
using transport::LinkRung;
namespace wire = transport::zmq_detail;

// "127.0.0.1:port" of a relay, as TORCHWAN_RELAY lists it.
std::string relay_address(const relay::RelayServer& server) {
  return "127.0.0.1:" + std::to_string(server.port());
}

// A relay admitting the holders of `secret_file` (when given), small windows and chunks so that
// every message crosses it in many pieces.
std::unique_ptr<relay::RelayServer> start_relay(const std::string& secret_file) {
  relay::RelayOptions options;
  options.host = "127.0.0.1";
  options.window_bytes = 1u << 20;
  options.max_chunk_bytes = 64u << 10;
  if (!secret_file.empty()) options.secret = security::JobSecret::load_file(secret_file);
  auto server = std::make_unique<relay::RelayServer>(options);
  server->start();
  return server;
}

transport::TransportOptions relayed_options(const std::string& relay, const std::string& secret,
                                            int lanes) {
  auto options = testing::loopback_options("zmq", lanes);
  options.relay = relay;
  options.secret_file = secret;
  options.connect_timeout = 20s;
  options.peer_timeout = 3s;
  return options;
}

// A job whose ranks 0 and 1 nobody can dial, with its secret and a relay that admits it.
struct RelayedJob {
  testing::SecretDir secrets;
  std::string secret = secrets.create("job.key");
  std::unique_ptr<relay::RelayServer> relay = start_relay(secret);
  HidingStore store{{0, 1}};

  std::vector<std::unique_ptr<transport::Transport>> connect(int size, int lanes) {
    auto outcomes = connect_each(
        size, [&](int) { return relayed_options(relay_address(*relay), secret, lanes); }, store);
    return take_transports(outcomes);
  }
};

TEST(RelayedRecords, RelayRecordsRoundTripAndRefuseWhatIsNeitherARegistrationNorAFailure) {
  const wire::RelayRecord registered{"0123abcd", "tcp://10.0.0.1:443", ""};
  const wire::RelayRecord failed{"0123abcd", "", "no relay answered"};
  std::string why;
  for (const auto& record : {registered, failed}) {
    const auto decoded = wire::decode_relay_record(wire::encode_relay_record(record), why);
    ASSERT_TRUE(decoded) << why;
    EXPECT_EQ(*decoded, record);
  }
  EXPECT_FALSE(wire::decode_relay_record(wire::encode_relay_record({"t", "", ""}), why));
  EXPECT_TRUE(contains(why, "neither a registration")) << why;
  const auto bytes = wire::encode_relay_record(registered);
  for (size_t cut = 0; cut < bytes.size(); ++cut) {
    EXPECT_FALSE(wire::decode_relay_record({bytes.begin(), bytes.begin() + cut}, why)) << cut;
  }
  EXPECT_FALSE(wire::decode_relay_record(
      wire::encode_relay_record({std::string(wire::kMaxRelayTokenBytes + 1, 'x'), "e", ""}), why));
  EXPECT_TRUE(contains(why, "token")) << why;
}

TEST(RelayedRecords, AStreamCutAnywhereGivesBackEveryFramePairAndRefusesAnOversizedOne) {
  // Three records (an empty payload among them), then the bytes fed in every chunk size.
  std::vector<std::pair<wire::Header, std::vector<uint8_t>>> frames;
  for (const size_t length : {size_t{300}, size_t{0}, size_t{5000}}) {
    wire::Header header;
    header.tag = 40 + length;
    header.length = length;
    header.total_length = length;
    frames.emplace_back(header, pattern_bytes(length, static_cast<uint32_t>(length)));
  }
  std::vector<uint8_t> stream;
  for (const auto& [header, payload] : frames) {
    const auto record = wire::make_relayed_record(wire::encode_header(header),
                                                  ::zmq::message_t(payload.data(), payload.size()));
    const auto bytes = record.bytes();
    stream.insert(stream.end(), bytes.begin(), bytes.end());
  }
  for (const size_t chunk :
       {size_t{1}, size_t{7}, size_t{72}, size_t{73}, size_t{4096}, stream.size()}) {
    wire::RelayedStreamReader reader(8192);
    size_t delivered = 0;
    for (size_t offset = 0; offset < stream.size(); offset += chunk) {
      const auto piece =
          std::span<const uint8_t>(stream).subspan(offset, std::min(chunk, stream.size() - offset));
      const std::string why = reader.feed(piece, [&](std::vector<::zmq::message_t>& parts) {
        ASSERT_EQ(parts.size(), 2u);
        const auto& [header, payload] = frames[delivered++];
        const wire::Header got =
            wire::decode_header(parts[0].data(), parts[0].size(), parts[1].size());
        EXPECT_EQ(got.tag, header.tag);
        EXPECT_TRUE(std::equal(payload.begin(), payload.end(),
                               static_cast<const uint8_t*>(parts[1].data())));
      });
      ASSERT_TRUE(why.empty()) << why;
    }
    EXPECT_EQ(delivered, frames.size()) << "chunks of " << chunk;
  }
  wire::RelayedStreamReader strict(1000);
  const std::string why = strict.feed(stream, [](std::vector<::zmq::message_t>&) {});
  EXPECT_TRUE(contains(why, "5000-byte payload, more than one piece (1000)")) << why;
}

class RelayRungLanes : public ::testing::TestWithParam<int> {};

TEST_P(RelayRungLanes, TwoRanksNeitherCanDialTalkThroughTheRelayEncryptedByDefault) {
  // Ranks 0 and 1 are hidden from everyone; rank 2 can be dialed and dials both.
  RelayedJob job;
  auto ranks = job.connect(3, GetParam());
  const std::vector<std::vector<LinkRung>> expected = {
      {LinkRung::kDirect, LinkRung::kRelay, LinkRung::kReverse},
      {LinkRung::kRelay, LinkRung::kDirect, LinkRung::kReverse},
      {LinkRung::kReverse, LinkRung::kReverse, LinkRung::kDirect}};
  expect_links(ranks, expected);
  for (int rank = 0; rank < 3; ++rank) {
    // A relay given and encryption left at "auto": the group encrypts.
    const std::string name = ranks[static_cast<size_t>(rank)]->name();
    EXPECT_TRUE(contains(name, "+aes-256-gcm") || contains(name, "+chacha20-poly1305")) << name;
  }
  exchange_everywhere(ranks);
  const auto stats = job.relay->stats();
  EXPECT_EQ(stats.members, static_cast<size_t>(2 * GetParam())) << "one member per lane";
  // 9 MiB each way between ranks 0 and 1 went through it, and nothing else.
  EXPECT_GT(stats.forwarded_bytes, 2u * (9u << 20));
  EXPECT_LT(stats.forwarded_bytes, 2u * (10u << 20));
  EXPECT_EQ(stats.dropped_clients, 0u);

  // Leaving still delivers what was sent: the goodbyes and acknowledgements cross the relay too.
  const auto data = pattern_bytes(3 << 20, 9);
  std::vector<uint8_t> got(data.size());
  auto receive = ranks[1]->irecv(0, 8, got.data(), got.size());
  ranks[0]->isend(1, 8, data.data(), data.size())->wait(20s);
  const auto start = Clock::now();
  ranks[0].reset();
  EXPECT_LT(seconds_since(start), 2.5);
  receive->wait(20s);
  EXPECT_TRUE(got == data);
}

INSTANTIATE_TEST_SUITE_P(Lanes, RelayRungLanes, ::testing::Values(1, 2));

TEST(RelayRung, AnIdleRelayedPairOutlivesThePeerTimeoutOnHeartbeats) {
  RelayedJob job;
  auto ranks = job.connect(2, 1);
  ASSERT_EQ(ranks[0]->links()[1], LinkRung::kRelay);
  // Nothing is sent for half as long again as peer_timeout (3 s): only the transport's own
  // heartbeats through the relay keep each side from losing the other.
  std::this_thread::sleep_for(4500ms);
  const auto data = pattern_bytes(100'000, 4);
  std::vector<uint8_t> got(data.size());
  auto receive = ranks[1]->irecv(0, 3, got.data(), got.size());
  ranks[0]->isend(1, 3, data.data(), data.size())->wait(10s);
  receive->wait(10s);
  EXPECT_TRUE(got == data);
}

TEST(RelayRung, APeerBehindAStoppedRelayIsLostWithinThePeerTimeout) {
  RelayedJob job;
  auto ranks = job.connect(2, 1);
  ASSERT_EQ(ranks[0]->links()[1], LinkRung::kRelay);
  std::vector<uint8_t> never(16);
  auto waiting = ranks[0]->irecv(1, 1, never.data(), never.size());
  const auto start = Clock::now();
  // Aborting sends a goodbye of the abort kind; stopping the relay instead cuts everything.
  job.relay->stop();
  const std::string failure = failure_of(*waiting, ErrorKind::kPeerLost, 15s);
  EXPECT_TRUE(contains(failure, "through the relay")) << failure;
  // peer_timeout is 3 s: found within it and a heartbeat interval or two.
  EXPECT_LT(seconds_since(start), 6.0);
}

TEST(RelayRung, ARelayNobodyCanReachFailsCreationNamingIt) {
  testing::SecretDir secrets;
  const std::string secret = secrets.create("job.key");
  HidingStore store({0, 1});
  auto options = relayed_options("127.0.0.1:9", secret, 1);  // nothing listens on port 9
  options.connect_timeout = 6s;
  const auto start = Clock::now();
  auto outcomes = connect_each(
      2, [&](int) { return options; }, store);
  EXPECT_LT(seconds_since(start), 8.0);
  for (int rank = 0; rank < 2; ++rank) {
    const auto& error = outcomes[static_cast<size_t>(rank)].error;
    ASSERT_TRUE(error) << "rank " << rank << " connected";
    EXPECT_EQ(error->kind(), ErrorKind::kBootstrap);
    EXPECT_TRUE(contains(error->what(), "only through a relay")) << error->what();
    EXPECT_TRUE(contains(error->what(), "tcp://127.0.0.1:9")) << error->what();
  }
}

TEST(RelayRung, ARelayWithoutTheJobSecretNeedsEncryptionTurnedOffExplicitly) {
  auto relay = start_relay("");
  HidingStore store({0, 1});
  // No secret, encryption "auto": refused at once, saying what to set.
  auto outcomes = connect_each(
      2, [&](int) { return relayed_options(relay_address(*relay), "", 1); }, store);
  for (const auto& outcome : outcomes) {
    ASSERT_TRUE(outcome.error);
    EXPECT_EQ(outcome.error->kind(), ErrorKind::kInvalidArgument);
    EXPECT_TRUE(contains(outcome.error->what(), "TORCHWAN_SECRET_FILE")) << outcome.error->what();
    EXPECT_TRUE(contains(outcome.error->what(), "TORCHWAN_ENCRYPTION=none"))
        << outcome.error->what();
  }
  // Plaintext through the relay when asked for explicitly.
  HidingStore clear_store({0, 1});
  auto clear = connect_each(
      2,
      [&](int) {
        auto options = relayed_options(relay_address(*relay), "", 2);
        options.encryption = "none";
        return options;
      },
      clear_store);
  auto ranks = take_transports(clear);
  EXPECT_EQ(ranks[1]->links()[0], LinkRung::kRelay);
  exchange_everywhere(ranks);
}

}  // namespace
}  // namespace torchwan
