// The relay in-process, with real ZeroMQ members over loopback TCP: byte-exact forwarding both
// ways on several lanes, 64 concurrent streams, a stalled receiver holding its sender at the
// window, hostile clients beside a legitimate stream, and one stream's throughput against a direct
// DEALER/ROUTER pair.
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <spdlog/sinks/ringbuffer_sink.h>
#include <sys/socket.h>

#include <atomic>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <map>
#include <string>
#include <thread>
#include <vector>
#include <zmq.hpp>

#include "base/log.h"
#include "relay/relay_client.h"
#include "relay/relay_server.h"
#include "relay/relay_wire.h"
#include "test_support.h"
#include "transport/secure/control_security.h"
#include "transport/secure/job_secret.h"

namespace torchwan::relay {
namespace {

using namespace std::chrono_literals;
using testing::pattern_bytes;

RelayClientOptions member_options(const RelayServer& relay, const std::string& member,
                                  std::optional<security::JobSecret> secret = std::nullopt) {
  RelayClientOptions options;
  options.endpoints = {relay.endpoint()};
  options.job_id = "job";
  options.member = member;
  options.secret = std::move(secret);
  options.timeout = 5000ms;
  return options;
}

RelayClient connect_member(const RelayServer& relay, const std::string& member,
                           std::optional<security::JobSecret> secret = std::nullopt) {
  return RelayClient(member_options(relay, member, std::move(secret)));
}

// Receives until `expected` holds, per (peer, lane), as many bytes as given; checks every byte.
void receive_exactly(
    RelayClient& client,
    const std::map<std::pair<std::string, uint32_t>, std::vector<uint8_t>>& expected) {
  std::map<std::pair<std::string, uint32_t>, size_t> got;
  size_t missing = 0;
  for (const auto& [stream, bytes] : expected) missing += bytes.size();
  while (missing > 0) {
    auto message = client.receive(10s);
    ASSERT_TRUE(message.has_value()) << "nothing arrived for 10 s, " << missing << " bytes missing";
    const auto stream = std::make_pair(message->peer, message->lane);
    const auto want = expected.find(stream);
    ASSERT_NE(want, expected.end()) << "bytes from " << message->peer << " lane " << message->lane;
    size_t& offset = got[stream];
    ASSERT_LE(offset + message->bytes().size(), want->second.size());
    ASSERT_TRUE(std::equal(message->bytes().begin(), message->bytes().end(),
                           want->second.begin() + static_cast<std::ptrdiff_t>(offset)))
        << "wrong bytes from " << message->peer << " lane " << message->lane << " at " << offset;
    offset += message->bytes().size();
    missing -= message->bytes().size();
  }
}

TEST(Relay, TwoMembersExchangeBothWaysOnSeveralLanesByteExact) {
  const RelayOptions options{.window_bytes = 1u << 20, .max_chunk_bytes = 64u << 10};
  RelayServer relay(options);
  relay.start();
  constexpr uint32_t kLanes = 4;
  std::map<std::pair<std::string, uint32_t>, std::vector<uint8_t>> to_b, to_a;
  for (uint32_t lane = 0; lane < kLanes; ++lane) {
    to_b[{"a", lane}] = pattern_bytes(300000 + lane * 7777, lane);
    to_a[{"b", lane}] = pattern_bytes(200000 + lane * 5555, 100 + lane);
  }
  // One thread per member: each sends its lanes while the other receives, then the other way.
  testing::run_on_threads(2, [&](int rank) {
    RelayClient client = connect_member(relay, rank == 0 ? "a" : "b");
    // Both registered before anything is sent, so no NO_ROUTE race.
    while (relay.stats().members < 2) std::this_thread::sleep_for(5ms);
    if (rank == 0) {
      for (uint32_t lane = 0; lane < kLanes; ++lane) client.send("b", lane, to_b[{"a", lane}]);
      receive_exactly(client, to_a);
    } else {
      receive_exactly(client, to_b);
      for (uint32_t lane = 0; lane < kLanes; ++lane) client.send("a", lane, to_a[{"b", lane}]);
      for (uint32_t lane = 0; lane < kLanes; ++lane) client.flush("a", lane);
    }
  });
  const RelayStats stats = relay.stats();
  size_t total = 0;
  for (const auto& [stream, bytes] : to_b) total += bytes.size();
  for (const auto& [stream, bytes] : to_a) total += bytes.size();
  EXPECT_EQ(stats.forwarded_bytes, total);
  EXPECT_EQ(stats.dropped_clients, 0u);
}

TEST(Relay, SixtyFourConcurrentStreamsAllCompleteByteExact) {
  const RelayOptions options{
      .max_streams = 64, .window_bytes = 512u << 10, .max_chunk_bytes = 64u << 10};
  RelayServer relay(options);
  relay.start();
  // Four senders, each to its own receiver on 16 lanes: 64 streams carrying bytes at once.
  constexpr int kPairs = 4;
  constexpr uint32_t kLanes = 16;
  constexpr size_t kBytesPerStream = 2u << 20;
  constexpr size_t kPiece = 64u << 10;
  std::vector<std::map<std::pair<std::string, uint32_t>, std::vector<uint8_t>>> expected(kPairs);
  for (int pair = 0; pair < kPairs; ++pair) {
    for (uint32_t lane = 0; lane < kLanes; ++lane) {
      expected[pair][{"sender-" + std::to_string(pair), lane}] =
          pattern_bytes(kBytesPerStream, static_cast<uint32_t>(pair * 100 + lane));
    }
  }
  std::atomic<size_t> streams_at_once{0};
  testing::run_on_threads(2 * kPairs, [&](int rank) {
    const int pair = rank / 2;
    const std::string sender = "sender-" + std::to_string(pair);
    const std::string receiver = "receiver-" + std::to_string(pair);
    RelayClient client = connect_member(relay, rank % 2 == 0 ? sender : receiver);
    while (relay.stats().members < 2 * kPairs) std::this_thread::sleep_for(5ms);
    if (rank % 2 == 1) {
      // Reading starts once every sender has bytes in flight on every lane: all 64 streams are
      // open in the relay together (a stream whose bytes are all credited frees its slot).
      const auto deadline = std::chrono::steady_clock::now() + 10s;
      while (relay.stats().streams < kPairs * kLanes &&
             std::chrono::steady_clock::now() < deadline) {
        std::this_thread::sleep_for(2ms);
      }
      streams_at_once = std::max(streams_at_once.load(), relay.stats().streams);
      return receive_exactly(client, expected[pair]);
    }
    // Interleaved across lanes, as a striping transport would, so all lanes are open together.
    for (size_t offset = 0; offset < kBytesPerStream; offset += kPiece) {
      for (uint32_t lane = 0; lane < kLanes; ++lane) {
        const auto& bytes = expected[pair][{sender, lane}];
        client.send(receiver, lane, std::span(bytes).subspan(offset, kPiece));
      }
    }
    for (uint32_t lane = 0; lane < kLanes; ++lane) client.flush(receiver, lane);
  });
  EXPECT_EQ(streams_at_once.load(), kPairs * kLanes);
  const RelayStats stats = relay.stats();
  EXPECT_EQ(stats.forwarded_bytes, kPairs * kLanes * kBytesPerStream);
  EXPECT_EQ(stats.refused_streams, 0u);
  EXPECT_EQ(stats.in_flight_bytes, 0u);
  EXPECT_LE(stats.peak_in_flight_bytes, 64 * options.window_bytes);
}

TEST(Relay, StreamsBeyondTheLimitGetNoRoute) {
  const RelayOptions options{
      .max_streams = 2, .window_bytes = 64u << 10, .max_chunk_bytes = 16u << 10};
  RelayServer relay(options);
  relay.start();
  RelayClient sender = connect_member(relay, "s");
  RelayClient receiver = connect_member(relay, "r");
  const auto bytes = pattern_bytes(1000, 1);
  sender.send("r", 0, bytes);
  sender.send("r", 1, bytes);
  sender.send("r", 2, bytes);  // the third concurrent stream: refused, reported at the flush
  try {
    sender.flush("r", 2);
    FAIL() << "a third stream went through a relay limited to two";
  } catch (const RelayError& error) {
    EXPECT_NE(std::string(error.what()).find("maximum of 2 streams"), std::string::npos)
        << error.what();
  }
  EXPECT_EQ(relay.stats().refused_streams, 1u);
}

TEST(Relay, StalledReceiverHoldsTheSenderAtItsWindowThenCompletes) {
  const RelayOptions options{.window_bytes = 1u << 20, .max_chunk_bytes = 64u << 10};
  RelayServer relay(options);
  relay.start();
  RelayClient receiver = connect_member(relay, "slow");
  const auto bytes = pattern_bytes(32u << 20, 7);
  std::atomic<size_t> sent{0};
  std::string sender_error;
  std::thread sender_thread([&] {
    try {
      RelayClient sender = connect_member(relay, "fast");
      constexpr size_t kPiece = 64u << 10;
      for (size_t offset = 0; offset < bytes.size(); offset += kPiece) {
        sender.send("slow", 0, std::span(bytes).subspan(offset, kPiece));
        sent += kPiece;
      }
      sender.flush("slow", 0);
    } catch (const std::exception& error) {
      sender_error = error.what();
    }
  });
  // The receiver reads nothing for a while: the sender must stop at one window.
  std::this_thread::sleep_for(1500ms);
  const RelayStats stalled = relay.stats();
  EXPECT_LE(sent.load(), options.window_bytes);
  EXPECT_GT(sent.load(), 0u);
  EXPECT_LE(stalled.in_flight_bytes, options.window_bytes);
  EXPECT_LE(stalled.queued_bytes, options.window_bytes);
  EXPECT_LE(stalled.peak_queued_bytes, options.window_bytes);
  if (sender_error.empty()) receive_exactly(receiver, {{{"fast", 0}, bytes}});
  sender_thread.join();
  EXPECT_EQ(sender_error, "");
  EXPECT_EQ(sent.load(), bytes.size());
  EXPECT_EQ(relay.stats().dropped_clients, 0u);
}

// Captures what the relay logs, so a test can check a refusal was logged with its reason.
class RelayLogCapture {
 public:
  RelayLogCapture() : sink_(std::make_shared<spdlog::sinks::ringbuffer_sink_mt>(256)) {
    layer_logger("relay")->sinks().push_back(sink_);
  }
  ~RelayLogCapture() {
    auto& sinks = layer_logger("relay")->sinks();
    sinks.erase(std::remove(sinks.begin(), sinks.end(), sink_), sinks.end());
  }
  bool contains(const std::string& text) const {
    for (const auto& line : sink_->last_formatted()) {
      if (line.find(text) != std::string::npos) return true;
    }
    return false;
  }

 private:
  std::shared_ptr<spdlog::sinks::ringbuffer_sink_mt> sink_;
};

// A member's DEALER holding the secret but none of the client library's manners.
struct RawMember {
  RawMember(const std::string& endpoint, const security::JobSecret& secret)
      : context(1), dealer(context, ::zmq::socket_type::dealer) {
    dealer.set(::zmq::sockopt::linger, 0);
    dealer.set(::zmq::sockopt::sndhwm, 0);
    elastic::make_curve_client(dealer, secret);
    dealer.connect(endpoint);
  }
  void send(const std::vector<uint8_t>& frame) {
    (void)dealer.send(::zmq::buffer(frame), ::zmq::send_flags::none);
  }
  std::optional<Frame> next(std::chrono::milliseconds timeout) {
    std::vector<::zmq::pollitem_t> items = {{dealer.handle(), 0, ZMQ_POLLIN, 0}};
    ::zmq::poll(items, timeout);
    ::zmq::message_t header;
    if (!dealer.recv(header, ::zmq::recv_flags::dontwait)) return std::nullopt;
    return decode_frame({static_cast<const uint8_t*>(header.data()), header.size()});
  }
  ::zmq::context_t context;
  ::zmq::socket_t dealer;
};

TEST(Relay, HostileClientsChangeNothingForALegitimateStream) {
  testing::SecretDir secrets;
  const auto secret = security::JobSecret::load_file(secrets.create("job.key"));
  const auto other_secret = security::JobSecret::load_file(secrets.create("other.key"));
  RelayLogCapture log;
  layer_logger("relay")->set_level(spdlog::level::info);
  const RelayOptions options{
      .secret = secret, .window_bytes = 1u << 20, .max_chunk_bytes = 64u << 10};
  RelayServer relay(options);
  relay.start();

  RelayClient receiver = connect_member(relay, "receiver", secret);
  // A member that registers and never reads: the flooder's target.
  RelayClient sink = connect_member(relay, "sink", secret);
  const auto bytes = pattern_bytes(24u << 20, 11);
  auto legitimate = [&] {
    RelayClient sender = connect_member(relay, "sender", secret);
    sender.send("receiver", 3, bytes);
    sender.flush("receiver", 3);
  };
  auto hostile = [&] {
    // 1. Raw TCP garbage on the relay port (a ZMQ_STREAM socket speaks plain TCP).
    {
      ::zmq::context_t context(1);
      ::zmq::socket_t raw(context, ::zmq::socket_type::stream);
      raw.set(::zmq::sockopt::linger, 0);
      raw.connect(relay.endpoint());
      const std::string peer = raw.get(::zmq::sockopt::routing_id);
      const auto garbage = pattern_bytes(4096, 99);
      (void)raw.send(::zmq::buffer(peer), ::zmq::send_flags::sndmore);
      (void)raw.send(::zmq::buffer(garbage), ::zmq::send_flags::none);
      std::this_thread::sleep_for(200ms);
    }
    // 2. The wrong secret: the handshake fails and the client says so.
    try {
      RelayClientOptions wrong;
      wrong.endpoints = {relay.endpoint()};
      wrong.job_id = "job";
      wrong.member = "intruder";
      wrong.secret = other_secret;
      wrong.timeout = 3000ms;
      RelayClient intruder(wrong);
      ADD_FAILURE() << "a client with another secret registered";
    } catch (const RelayError& error) {
      EXPECT_NE(std::string(error.what()).find("intruder"), std::string::npos) << error.what();
    }
    // 3. A member sending garbage frames: dropped with a reason.
    {
      RawMember garbler(relay.endpoint(), secret);
      garbler.send(pattern_bytes(100, 5));
      const auto answer = garbler.next(3000ms);
      ASSERT_TRUE(answer.has_value());
      EXPECT_EQ(answer->type, FrameType::kRefused);
      EXPECT_NE(answer->reason.find("magic"), std::string::npos) << answer->reason;
    }
    // 4. A member flooding another beyond its window, ignoring credit.
    {
      RawMember flooder(relay.endpoint(), secret);
      flooder.send(encode_frame(register_frame("job", "flooder")));
      ASSERT_EQ(flooder.next(3000ms)->type, FrameType::kRegistered);
      const auto chunk = pattern_bytes(options.max_chunk_bytes, 6);
      for (int i = 0; i < 64; ++i) {  // 4 MiB into a 1 MiB window
        const auto header = encode_frame(data_frame("sink", 3, chunk.size()));
        (void)flooder.dealer.send(::zmq::buffer(header), ::zmq::send_flags::sndmore);
        (void)flooder.dealer.send(::zmq::buffer(chunk), ::zmq::send_flags::none);
      }
      const auto answer = flooder.next(3000ms);
      ASSERT_TRUE(answer.has_value());
      EXPECT_EQ(answer->type, FrameType::kRefused);
      EXPECT_NE(answer->reason.find("window"), std::string::npos) << answer->reason;
    }
    // 5. A member sending to nobody: a clear error, not a hang.
    {
      RelayClient lost = connect_member(relay, "lost", secret);
      lost.send("nobody", 0, pattern_bytes(1000, 1));
      try {
        lost.flush("nobody", 0);
        ADD_FAILURE() << "bytes to an unknown member were accepted";
      } catch (const RelayError& error) {
        EXPECT_NE(std::string(error.what()).find("'nobody' is not registered"), std::string::npos)
            << error.what();
      }
    }
  };
  auto receive_legitimate = [&] {
    size_t offset = 0;
    while (offset < bytes.size()) {
      auto message = receiver.receive(10s);
      ASSERT_TRUE(message.has_value()) << "the legitimate stream stalled at " << offset;
      ASSERT_EQ(message->peer, "sender");
      ASSERT_EQ(message->lane, 3u);
      ASSERT_LE(offset + message->bytes().size(), bytes.size());
      ASSERT_TRUE(std::equal(message->bytes().begin(), message->bytes().end(),
                             bytes.begin() + static_cast<std::ptrdiff_t>(offset)))
          << "wrong bytes at " << offset;
      offset += message->bytes().size();
    }
  };
  testing::run_on_threads(3, [&](int rank) {
    if (rank == 0) return receive_legitimate();
    if (rank == 1) return legitimate();
    hostile();
  });
  const RelayStats stats = relay.stats();
  EXPECT_GE(stats.handshake_failures, 1u);
  EXPECT_EQ(stats.dropped_clients, 2u);  // the garbler and the flooder
  EXPECT_EQ(stats.refused_streams, 1u);  // "nobody"
  EXPECT_TRUE(log.contains("failed its handshake"));
  EXPECT_TRUE(log.contains("not a relay frame"));
  EXPECT_TRUE(log.contains("flooded its stream to 'sink'"));
  EXPECT_TRUE(log.contains("'nobody' is not registered"));
}

TEST(Relay, AReceiverThatDisconnectsMidStreamFailsItsSenderFast) {
  const RelayOptions options{.window_bytes = 256u << 10, .max_chunk_bytes = 64u << 10};
  RelayServer relay(options);
  relay.start();
  RelayClient sender = connect_member(relay, "sender");  // timeout 5 s
  auto receiver = std::make_unique<RelayClient>(member_options(relay, "receiver"));
  sender.send("receiver", 0, pattern_bytes(options.window_bytes, 1));  // a full window
  // Forwarded while the receiver was still there, so only the relay's probe can find out.
  while (relay.stats().in_flight_bytes < options.window_bytes || relay.stats().queued_bytes > 0) {
    std::this_thread::sleep_for(5ms);
  }
  std::this_thread::sleep_for(100ms);
  receiver.reset();  // gone without a word, its bytes never credited
  const auto start = std::chrono::steady_clock::now();
  try {
    sender.send("receiver", 0, pattern_bytes(1000, 2));
    sender.flush("receiver", 0);
    FAIL() << "bytes to a member that left were accepted";
  } catch (const RelayError& error) {
    // Which the relay noticed first (the forward failing, or the probe) decides the wording.
    const std::string what = error.what();
    EXPECT_TRUE(what.find("'receiver' left the relay") != std::string::npos ||
                what.find("'receiver' is not registered") != std::string::npos)
        << what;
  }
  EXPECT_LT(std::chrono::steady_clock::now() - start, 3s) << "found out only at the timeout";
  EXPECT_EQ(relay.stats().members, 1u);
  EXPECT_EQ(relay.stats().in_flight_bytes, 0u);
}

TEST(Relay, WithASecretASecondRegistrationReplacesTheFirst) {
  testing::SecretDir secrets;
  const auto secret = security::JobSecret::load_file(secrets.create("job.key"));
  const RelayOptions options{.secret = secret};
  RelayServer relay(options);
  relay.start();
  RelayClient old_connection = connect_member(relay, "rank-1", secret);
  RelayClient new_connection = connect_member(relay, "rank-1", secret);  // reconnected
  RelayClient sender = connect_member(relay, "rank-0", secret);
  const auto bytes = pattern_bytes(5000, 4);
  sender.send("rank-1", 0, bytes);
  const auto message = new_connection.receive(5s);
  ASSERT_TRUE(message.has_value());
  EXPECT_EQ(std::vector<uint8_t>(message->bytes().begin(), message->bytes().end()), bytes);
  EXPECT_FALSE(old_connection.receive(200ms).has_value());
  EXPECT_EQ(relay.stats().members, 2u);
}

TEST(Relay, AClientTriesTheNextRelayWhenOneRefusesIt) {
  testing::SecretDir secrets;
  const auto secret = security::JobSecret::load_file(secrets.create("job.key"));
  RelayOptions other_job;
  other_job.secret = security::JobSecret::load_file(secrets.create("other.key"));
  RelayServer wrong_relay(other_job);
  wrong_relay.start();
  RelayOptions options;
  options.secret = secret;
  RelayServer right_relay(options);
  right_relay.start();
  RelayClientOptions client = member_options(right_relay, "rank-0", secret);
  client.endpoints = {wrong_relay.endpoint(), right_relay.endpoint()};
  RelayClient member(client);
  EXPECT_EQ(member.endpoint(), right_relay.endpoint());
  EXPECT_EQ(right_relay.stats().members, 1u);
  EXPECT_EQ(wrong_relay.stats().members, 0u);
}

int port_of(const sockaddr_storage& address) {
  if (address.ss_family == AF_INET) {
    return ntohs(reinterpret_cast<const sockaddr_in&>(address).sin_port);
  }
  if (address.ss_family == AF_INET6) {
    return ntohs(reinterpret_cast<const sockaddr_in6&>(address).sin6_port);
  }
  return -1;
}

// The congestion control of each TCP connection of this process with `port` at either end.
std::vector<std::string> congestion_controls_on_port(int port) {
  std::vector<std::string> found;
  for (const auto& entry : std::filesystem::directory_iterator("/proc/self/fd")) {
    const int fd = std::stoi(entry.path().filename().string());
    sockaddr_storage local{};
    sockaddr_storage remote{};
    socklen_t local_length = sizeof(local);
    socklen_t remote_length = sizeof(remote);
    if (getsockname(fd, reinterpret_cast<sockaddr*>(&local), &local_length) != 0 ||
        getpeername(fd, reinterpret_cast<sockaddr*>(&remote), &remote_length) != 0 ||
        (port_of(local) != port && port_of(remote) != port)) {
      continue;
    }
    char name[32] = {};
    socklen_t name_length = sizeof(name);
    if (getsockopt(fd, IPPROTO_TCP, TCP_CONGESTION, name, &name_length) == 0) {
      found.emplace_back(name);
    }
  }
  return found;
}

TEST(Relay, BothEndsOfAMembersConnectionUseTheCongestionControlAskedFor) {
  // reno is built into every kernel; the test asks for it because the default is something else.
  std::string system_default;
  std::ifstream("/proc/sys/net/ipv4/tcp_congestion_control") >> system_default;
  if (system_default == "reno") GTEST_SKIP() << "the system default is reno already";
  RelayOptions options;
  options.congestion = "reno";
  RelayServer relay(options);
  relay.start();
  RelayClientOptions client = member_options(relay, "rank-0");
  client.congestion = "reno";
  RelayClient member(client);
  EXPECT_EQ(member.tuning_problem(), "");
  // The relay tunes what it accepted on its serving thread, while the client registers; on a
  // busy machine (tests in parallel) that thread may run a while later, so wait up to 10 s.
  std::vector<std::string> found;
  for (int attempt = 0; attempt < 1000; ++attempt) {
    found = congestion_controls_on_port(relay.port());
    if (found == std::vector<std::string>{"reno", "reno"}) break;
    std::this_thread::sleep_for(10ms);
  }
  EXPECT_EQ(found, (std::vector<std::string>{"reno", "reno"}))
      << "the relay's end and the member's end of their one connection";
}

TEST(Relay, WithoutASecretASecondRegistrationOfAMemberIsRefused) {
  RelayServer relay(RelayOptions{});
  relay.start();
  RelayClient first = connect_member(relay, "rank-0");
  try {
    RelayClient second = connect_member(relay, "rank-0");
    FAIL() << "a second connection took over member rank-0 without authentication";
  } catch (const RelayError& error) {
    EXPECT_NE(std::string(error.what()).find("already registered"), std::string::npos)
        << error.what();
  }
}

}  // namespace
}  // namespace torchwan::relay
