// One stream's loopback throughput through the relay (plain and with CURVE), against a direct
// ZeroMQ DEALER/ROUTER pair moving the same chunks in the same run. Prints one line per path and
// the ratios (recorded in bench/results/relay.md); asserts only that every byte arrived.
#include <gtest/gtest.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <string>
#include <thread>
#include <zmq.hpp>

#include "relay/relay_client.h"
#include "relay/relay_server.h"
#include "test_support.h"

namespace torchwan::relay {
namespace {

using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;

constexpr size_t kTotalBytes = 256u << 20;
constexpr size_t kChunk = 256u << 10;

double seconds_since(Clock::time_point start) {
  return std::chrono::duration<double>(Clock::now() - start).count();
}

// MB/s of kTotalBytes through a relay with `options`.
double through_relay(RelayOptions options, const std::vector<uint8_t>& chunk) {
  RelayServer relay(options);
  relay.start();
  RelayClientOptions client;
  client.endpoints = {relay.endpoint()};
  client.job_id = "bench";
  client.secret = options.secret;
  client.member = "sender";
  RelayClient sender(client);
  client.member = "receiver";
  RelayClient receiver(client);
  const auto start = Clock::now();
  std::thread sending([&] {
    for (size_t sent = 0; sent < kTotalBytes; sent += chunk.size())
      sender.send("receiver", 0, chunk);
    sender.flush("receiver", 0);
  });
  size_t received = 0;
  bool exact = true;
  while (received < kTotalBytes) {
    auto message = receiver.receive(10s);
    if (!message) break;
    exact = exact && message->bytes().size() == chunk.size() &&
            std::equal(message->bytes().begin(), message->bytes().end(), chunk.begin());
    received += message->bytes().size();
  }
  sending.join();
  const double elapsed = seconds_since(start);
  EXPECT_EQ(received, kTotalBytes);
  EXPECT_TRUE(exact);
  return kTotalBytes / elapsed / 1e6;
}

// MB/s of kTotalBytes from a DEALER straight to a ROUTER, no relay, no flow control of ours.
double direct(const std::vector<uint8_t>& chunk) {
  ::zmq::context_t context(1);
  ::zmq::socket_t router(context, ::zmq::socket_type::router);
  router.set(::zmq::sockopt::linger, 0);
  router.bind("tcp://127.0.0.1:*");
  const std::string endpoint = router.get(::zmq::sockopt::last_endpoint);
  ::zmq::socket_t dealer(context, ::zmq::socket_type::dealer);
  dealer.set(::zmq::sockopt::linger, 0);
  dealer.connect(endpoint);
  const auto start = Clock::now();
  std::thread sending([&] {
    for (size_t sent = 0; sent < kTotalBytes; sent += chunk.size()) {
      (void)dealer.send(::zmq::buffer(chunk), ::zmq::send_flags::none);
    }
  });
  size_t received = 0;
  bool exact = true;
  while (received < kTotalBytes) {
    ::zmq::message_t id, payload;
    (void)router.recv(id, ::zmq::recv_flags::none);
    (void)router.recv(payload, ::zmq::recv_flags::none);
    // The same copy out of ZeroMQ's message that the relay client makes, for a fair comparison.
    std::vector<uint8_t> bytes(static_cast<const uint8_t*>(payload.data()),
                               static_cast<const uint8_t*>(payload.data()) + payload.size());
    exact = exact && bytes == chunk;
    received += bytes.size();
  }
  sending.join();
  const double elapsed = seconds_since(start);
  EXPECT_TRUE(exact);
  return kTotalBytes / elapsed / 1e6;
}

TEST(RelayThroughput, OneStreamAgainstADirectDealerRouterPair) {
  const auto chunk = testing::pattern_bytes(kChunk, 1);
  testing::SecretDir secrets;
  RelayOptions plain;
  RelayOptions curve;
  curve.secret = security::JobSecret::load_file(secrets.create("job.key"));
  // The direct pair runs before and after the relay, and its better run is the reference, so a
  // burst of load from other processes during one run does not flatter the relay.
  const double direct_before = direct(chunk);
  const double relay_mbps = through_relay(plain, chunk);
  const double curve_mbps = through_relay(curve, chunk);
  const double direct_mbps = std::max(direct_before, direct(chunk));
  std::printf("relay throughput, one stream, %zu MiB in %zu KiB chunks, window %llu KiB:\n",
              kTotalBytes >> 20, kChunk >> 10,
              static_cast<unsigned long long>(plain.window_bytes >> 10));
  std::printf("  direct DEALER/ROUTER  %8.0f MB/s\n", direct_mbps);
  std::printf("  through the relay     %8.0f MB/s  (%.2f x direct)\n", relay_mbps,
              relay_mbps / direct_mbps);
  std::printf("  relay with CURVE      %8.0f MB/s  (%.2f x direct)\n", curve_mbps,
              curve_mbps / direct_mbps);
}

}  // namespace
}  // namespace torchwan::relay
