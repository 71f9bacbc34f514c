// Tests of the ZeroMQ transport: wire codecs, point-to-point correctness (sizes, ordering,
// striping, unexpected messages), errors (size mismatch, bootstrap, cancel, abort), and failure
// detection against real peer processes that are killed or stopped.
#include <arpa/inet.h>
#include <fmt/format.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <future>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <random>
#include <string>
#include <thread>
#include <vector>
#include <zmq.hpp>

#include "test_support.h"
#include "transport/secure/data_auth.h"
#include "transport/transport.h"
#include "transport/zmq/zmq_records.h"
#include "transport/zmq/zmq_wire.h"
#include "zmq_hand_rolled_peer.h"

namespace torchwan {
namespace {

using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;
using testing::ChildProcess;
using testing::HandRolledPeer;
using testing::loopback_options;
using testing::pattern_bytes;
using testing::run_on_threads;
using testing::TempDir;
using transport::ErrorKind;
using transport::Request;
using transport::Tag;
using transport::Transport;
using transport::TransportError;
using transport::TransportOptions;
namespace wire = transport::zmq_detail;

// What a real rank publishes before its addresses (here: no job secret), for tests that stand in
// for a rank by hand.
void publish_unauthenticated_record(transport::Store& store, int rank, int size) {
  transport::DataAuth(TransportOptions{}, rank, size, "hand-rolled rank").publish(store);
}

constexpr size_t kMiB = size_t{1} << 20;

// The error a request ended with, or nothing when it succeeded. A request still pending after
// `timeout` yields a kTimeout error, which no test expects.
std::optional<TransportError> error_of(Request& request, std::chrono::milliseconds timeout = 20s) {
  try {
    request.wait(timeout);
  } catch (const TransportError& error) {
    return error;
  }
  return std::nullopt;
}

bool contains(const std::string& text, const std::string& part) {
  return text.find(part) != std::string::npos;
}

double seconds_since(Clock::time_point start) {
  return std::chrono::duration<double>(Clock::now() - start).count();
}

// Creates `size` connected ranks over `store`, which the test may then inspect.
std::vector<std::unique_ptr<Transport>> connect_over(const TransportOptions& options,
                                                     transport::Store& store, int size) {
  std::vector<std::unique_ptr<Transport>> ranks(static_cast<size_t>(size));
  run_on_threads(size, [&](int rank) {
    ranks[static_cast<size_t>(rank)] = Transport::create(options, store, rank, size);
  });
  return ranks;
}

std::string lane_endpoint(transport::Store& store, int rank, int lane) {
  std::string why;
  const auto record = wire::decode_address_record(store.get(wire::address_key(rank), 5s), why);
  if (!record) throw std::runtime_error(why);
  return record->endpoint(0, lane);
}

// Records every call of the peer failure handler.
struct FailureLog {
  std::mutex mutex;
  std::vector<int> peers;
  std::vector<std::string> reasons;

  Transport::PeerFailureHandler handler() {
    return [this](int peer, const std::string& why) {
      std::lock_guard<std::mutex> lock(mutex);
      peers.push_back(peer);
      reasons.push_back(why);
    };
  }
  std::vector<int> seen() {
    std::lock_guard<std::mutex> lock(mutex);
    return peers;
  }
  // The handler runs after the lost peer's requests failed, so it may lag behind them a little.
  std::vector<int> seen_within(std::chrono::milliseconds timeout) {
    const auto deadline = Clock::now() + timeout;
    while (seen().empty() && Clock::now() < deadline) std::this_thread::sleep_for(1ms);
    return seen();
  }
};

// Keeps a test's requests, and finishes them before its buffers go away: when a test stops early
// (a failed ASSERT), its pending requests are canceled and awaited, so no transport writes into a
// freed buffer. Declare it after the buffers the requests use.
class InFlight {
 public:
  InFlight() = default;
  InFlight(const InFlight&) = delete;
  InFlight& operator=(const InFlight&) = delete;
  ~InFlight() {
    for (auto& request : requests_) {
      if (request->done()) continue;
      request->cancel();
      try {
        request->wait(10s);
      } catch (const std::exception&) {
      }
    }
  }
  std::shared_ptr<Request> operator()(std::shared_ptr<Request> request) {
    requests_.push_back(request);
    return request;
  }

 private:
  std::vector<std::shared_ptr<Request>> requests_;
};

// ---------------------------------------------------------------------------------------------
// Wire codecs

// The decoder's complaint about `bytes`, or "" when it accepts them.
std::string header_complaint(const uint8_t* bytes, size_t size, size_t payload) {
  try {
    wire::decode_header(bytes, size, payload);
    return "";
  } catch (const transport::core::WireError& malformed) {
    return malformed.what();
  }
}

TEST(ZmqWire, HeaderRoundTrips) {
  wire::Header header;
  header.type = wire::MessageType::kData;
  header.tag = (Tag{1} << 47) + 5;
  header.index = 77;
  header.total_length = 1000;
  header.offset = 600;
  header.length = 400;
  const auto bytes = wire::encode_header(header);
  ASSERT_EQ(bytes.size(), wire::kHeaderBytes);
  EXPECT_EQ(bytes[0], 'T');  // the shared little-endian magic "TWWN"
  EXPECT_EQ(bytes[3], 'N');
  const auto decoded = wire::decode_header(bytes.data(), bytes.size(), 400);
  EXPECT_EQ(decoded.tag, header.tag);
  EXPECT_EQ(decoded.index, 77u);
  EXPECT_EQ(decoded.total_length, 1000u);
  EXPECT_EQ(decoded.offset, 600u);
  EXPECT_EQ(decoded.length, 400u);
}

TEST(ZmqWire, HeaderDecoderRejectsEveryMalformation) {
  wire::Header good;
  good.total_length = 100;
  good.offset = 10;
  good.length = 20;
  auto rejects = [](wire::Header header, size_t payload, const std::string& reason) {
    const auto bytes = wire::encode_header(header);
    const std::string why = header_complaint(bytes.data(), bytes.size(), payload);
    EXPECT_FALSE(why.empty()) << reason;
    return why;
  };
  auto bytes = wire::encode_header(good);
  EXPECT_TRUE(contains(header_complaint(bytes.data(), bytes.size() - 1, 20),
                       fmt::format("header frame of {} bytes", wire::kHeaderBytes - 1)));

  bytes[0] ^= 0xFF;  // the magic
  EXPECT_TRUE(contains(header_complaint(bytes.data(), bytes.size(), 20), "bad magic"));
  bytes = wire::encode_header(good);
  bytes[4] = static_cast<uint8_t>(transport::core::kWireVersion + 1);  // the version
  EXPECT_TRUE(contains(header_complaint(bytes.data(), bytes.size(), 20),
                       fmt::format("protocol version {}", transport::core::kWireVersion + 1)));
  auto bad = good;
  bad.type = static_cast<wire::MessageType>(9);
  EXPECT_TRUE(contains(rejects(bad, 20, "type"), "unknown message type 9"));
  bad = good;
  bad.offset = 90;  // 90 + 20 > 100
  EXPECT_TRUE(contains(rejects(bad, 20, "overrun"), "outside"));
  bad = good;
  bad.offset = 50;
  bad.length = ~uint64_t{0} - 10;  // offset + length wraps around
  rejects(bad, 20, "overflowing sum");
  bad = good;
  bad.offset = 200;  // beyond the message
  rejects(bad, 20, "offset past the end");
  EXPECT_TRUE(contains(rejects(good, 21, "payload size"), "21 came"));
  bad = good;
  bad.tag = transport::kMaxTag;
  rejects(bad, 20, "tag");
  bad = good;
  bad.type = wire::MessageType::kControl;
  EXPECT_TRUE(contains(rejects(bad, 20, "control message of the wrong size"), "20-byte body"));
  bad.type = wire::MessageType::kCancel;
  EXPECT_TRUE(contains(rejects(bad, 20, "cancel with a payload"), "cancel notice"));
}

TEST(ZmqWire, RandomHeadersNeverDecodeInconsistently) {
  std::mt19937_64 random(12345);
  int accepted = 0;
  int rejected = 0;
  for (int i = 0; i < 200000; ++i) {
    std::array<uint8_t, wire::kHeaderBytes> bytes{};
    size_t payload = random() % 64;
    if (i % 2 == 0) {
      for (auto& byte : bytes) byte = static_cast<uint8_t>(random());
    } else {
      // Valid magic and version with small random fields, so the range checks decide.
      wire::Header header;
      header.type = static_cast<wire::MessageType>(random() % 5);
      header.tag = random() % (transport::kMaxTag * 2);
      header.index = random();
      header.total_length = random() % 128;
      header.offset = random() % 128;
      header.length = random() % 64;
      bytes = wire::encode_header(header);
      if (random() % 2 == 0) payload = header.length;
    }
    wire::Header header;
    try {
      header = wire::decode_header(bytes.data(), bytes.size(), payload);
    } catch (const transport::core::WireError& malformed) {
      ++rejected;
      ASSERT_TRUE(contains(malformed.what(), "malformed message header"));
      continue;
    }
    ++accepted;
    ASSERT_LE(header.offset, header.total_length);
    ASSERT_LE(header.length, header.total_length - header.offset);
    ASSERT_EQ(header.length, payload);
    ASSERT_LT(header.tag, transport::kMaxTag);
  }
  EXPECT_GT(accepted, 100);
  EXPECT_GT(rejected, 100000);
}

TEST(ZmqWire, RoutingIds) {
  const std::string id = wire::routing_id(65534, 63);
  ASSERT_NE(id[0], '\0');
  const auto owner = wire::decode_routing_id(id.data(), id.size());
  ASSERT_TRUE(owner);
  EXPECT_EQ(owner->rank, 65534);
  EXPECT_EQ(owner->lane, 63);
  const std::string generated("\0\x6b\x8b\x45\x67", 5);  // what ZMQ gives anonymous peers
  EXPECT_FALSE(wire::decode_routing_id(generated.data(), generated.size()));
}

// ---------------------------------------------------------------------------------------------
// Point-to-point correctness

class ZmqTransportLanes : public ::testing::TestWithParam<int> {};

TEST_P(ZmqTransportLanes, MessagesOfEverySizeArriveByteExact) {
  const TransportOptions options = loopback_options("zmq", GetParam());
  auto ranks = testing::connect_ranks(options, 2);
  ASSERT_EQ(ranks[0]->name(), "zmq");
  const std::vector<size_t> sizes = {0, 1, 4095, kMiB + 3, 64 * kMiB, 256 * kMiB};
  for (size_t size : sizes) {
    SCOPED_TRACE("size " + std::to_string(size) + ", lanes " + std::to_string(GetParam()));
    // Both directions at once, each with its own pattern.
    const auto forward = pattern_bytes(size, 1);
    const auto backward = pattern_bytes(size, 2);
    std::vector<uint8_t> got_forward(size, 0xAA);
    std::vector<uint8_t> got_backward(size, 0xAA);
    const Tag tag = 40 + size % 7;
    InFlight in_flight;
    auto recv0 = in_flight(ranks[0]->irecv(1, tag, got_backward.data(), size));
    auto send0 = in_flight(ranks[0]->isend(1, tag, forward.data(), size));
    auto send1 = in_flight(ranks[1]->isend(0, tag, backward.data(), size));
    auto recv1 = in_flight(ranks[1]->irecv(0, tag, got_forward.data(), size));
    for (auto* request : {send0.get(), send1.get(), recv0.get(), recv1.get()}) {
      const auto error = error_of(*request, 60s);
      ASSERT_FALSE(error) << error->what();
    }
    ASSERT_TRUE(got_forward == forward);
    ASSERT_TRUE(got_backward == backward);
  }
}

INSTANTIATE_TEST_SUITE_P(Lanes, ZmqTransportLanes, ::testing::Values(1, 4));

TEST(ZmqTransport, WorksOverIpv6) {
  TransportOptions options = loopback_options("zmq", 2);
  options.host = "::1";
  const auto data = pattern_bytes(3 * kMiB + 1, 77);
  std::vector<uint8_t> got(data.size());
  transport::MemoryStore store;
  auto ranks = connect_over(options, store, 2);
  EXPECT_TRUE(contains(lane_endpoint(store, 0, 0), "tcp://[::1]:")) << lane_endpoint(store, 0, 0);
  InFlight in_flight;
  auto recv = in_flight(ranks[1]->irecv(0, 1, got.data(), got.size()));
  ASSERT_FALSE(error_of(*in_flight(ranks[0]->isend(1, 1, data.data(), data.size()))));
  ASSERT_FALSE(error_of(*recv));
  EXPECT_TRUE(got == data);
}

TEST(ZmqTransport, FiveThousandSmallMessagesInFlight) {
  auto ranks = testing::connect_ranks(loopback_options("zmq", 2), 2);
  constexpr int kMessages = 5000;
  constexpr size_t kBytes = 100;
  std::vector<std::vector<uint8_t>> outgoing(kMessages);
  std::vector<std::vector<uint8_t>> incoming(kMessages, std::vector<uint8_t>(kBytes));
  std::atomic<int> callbacks{0};
  InFlight in_flight;
  std::vector<std::shared_ptr<Request>> requests;
  for (int i = 0; i < kMessages; ++i) {
    outgoing[i] = pattern_bytes(kBytes, static_cast<uint32_t>(i));
    // 50 tags, so each tag carries 100 messages that must stay in order.
    requests.push_back(in_flight(ranks[1]->isend(0, Tag(i % 50), outgoing[i].data(), kBytes)));
  }
  for (int i = 0; i < kMessages; ++i) {
    requests.push_back(
        in_flight(ranks[0]->irecv(1, Tag(i % 50), incoming[i].data(), kBytes, [&](Request& done) {
          if (done.ok()) ++callbacks;
        })));
  }
  for (auto& request : requests) {
    const auto error = error_of(*request);
    ASSERT_FALSE(error) << error->what();
  }
  for (int i = 0; i < kMessages; ++i) ASSERT_EQ(incoming[i], outgoing[i]) << "message " << i;
  // A callback runs just after its waiters are released.
  const auto deadline = Clock::now() + 2s;
  while (callbacks.load() < kMessages && Clock::now() < deadline) std::this_thread::sleep_for(1ms);
  EXPECT_EQ(callbacks.load(), kMessages);
}

// Messages of several sizes (striped and not) on distinct tags, received in reverse tag order,
// either posted before the data comes or long after it arrived.
void exchange_out_of_order(bool post_late) {
  TransportOptions options = loopback_options("zmq", 4);
  options.chunk_bytes = 256 * 1024;
  auto ranks = testing::connect_ranks(options, 2);
  constexpr int kTags = 24;
  std::vector<std::vector<uint8_t>> outgoing(kTags);
  std::vector<std::vector<uint8_t>> incoming(kTags);
  for (int tag = 0; tag < kTags; ++tag) {
    const size_t size = (tag % 3 == 0) ? 3 * kMiB + static_cast<size_t>(tag) : 100u * tag + 1;
    outgoing[tag] = pattern_bytes(size, static_cast<uint32_t>(tag + 100));
    incoming[tag].assign(size, 0);
  }
  InFlight in_flight;
  std::vector<std::shared_ptr<Request>> recvs(kTags);
  auto post_recvs = [&] {
    for (int tag = kTags - 1; tag >= 0; --tag) {
      recvs[tag] =
          in_flight(ranks[0]->irecv(1, Tag(tag), incoming[tag].data(), incoming[tag].size()));
    }
  };
  if (!post_late) post_recvs();
  std::vector<std::shared_ptr<Request>> sends;
  for (int tag = 0; tag < kTags; ++tag) {
    sends.push_back(
        in_flight(ranks[1]->isend(0, Tag(tag), outgoing[tag].data(), outgoing[tag].size())));
  }
  for (auto& send : sends) ASSERT_FALSE(error_of(*send));
  if (post_late) {
    // The sends are done, so their bytes left; give them time to land as unexpected messages.
    std::this_thread::sleep_for(300ms);
    for (auto& recv : recvs) ASSERT_EQ(recv, nullptr);
    post_recvs();
  }
  for (int tag = 0; tag < kTags; ++tag) {
    const auto error = error_of(*recvs[tag]);
    ASSERT_FALSE(error) << error->what();
    ASSERT_TRUE(incoming[tag] == outgoing[tag]) << "tag " << tag;
  }
}

TEST(ZmqTransport, ReceivesPostedInReverseTagOrder) { exchange_out_of_order(false); }

TEST(ZmqTransport, ReceivesPostedAfterTheDataArrived) { exchange_out_of_order(true); }

TEST(ZmqTransport, StripedMessagesWithOneTagReassembleInOrder) {
  TransportOptions options = loopback_options("zmq", 4);
  options.chunk_bytes = 64 * 1024;
  options.stripe_min_bytes = 64 * 1024;
  auto ranks = testing::connect_ranks(options, 2);
  // Same tag throughout: the pieces of consecutive messages interleave across the four lanes
  // and must still land in the right message at the right offset.
  const std::vector<size_t> sizes = {3 * kMiB + 7, kMiB + 1, 100, 5 * kMiB, 64 * 1024 + 3, 0};
  std::vector<std::vector<uint8_t>> outgoing;
  std::vector<std::vector<uint8_t>> incoming;
  for (size_t i = 0; i < sizes.size(); ++i) {
    outgoing.push_back(pattern_bytes(sizes[i], static_cast<uint32_t>(500 + i)));
    incoming.emplace_back(sizes[i], 0);
  }
  InFlight in_flight;
  std::vector<std::shared_ptr<Request>> requests;
  for (size_t i = 0; i < sizes.size(); ++i) {
    requests.push_back(in_flight(ranks[1]->isend(0, 7, outgoing[i].data(), sizes[i])));
  }
  // Half posted now, half after a pause: both the posted and the unexpected path reassemble.
  for (size_t i = 0; i < sizes.size() / 2; ++i) {
    requests.push_back(in_flight(ranks[0]->irecv(1, 7, incoming[i].data(), sizes[i])));
  }
  std::this_thread::sleep_for(100ms);
  for (size_t i = sizes.size() / 2; i < sizes.size(); ++i) {
    requests.push_back(in_flight(ranks[0]->irecv(1, 7, incoming[i].data(), sizes[i])));
  }
  for (auto& request : requests) {
    const auto error = error_of(*request);
    ASSERT_FALSE(error) << error->what();
  }
  for (size_t i = 0; i < sizes.size(); ++i) {
    ASSERT_TRUE(incoming[i] == outgoing[i]) << "message " << i;
  }
}

// ---------------------------------------------------------------------------------------------
// Errors the caller makes

TEST(ZmqTransport, SizeMismatchFailsTheReceiveAndTheNextMessageStillMatches) {
  TransportOptions options = loopback_options("zmq", 2);
  options.chunk_bytes = 64 * 1024;
  options.stripe_min_bytes = 64 * 1024;
  auto ranks = testing::connect_ranks(options, 2);
  const auto small = pattern_bytes(100, 1);
  const auto large = pattern_bytes(2 * kMiB, 2);  // striped, many pieces
  const auto next = pattern_bytes(64, 3);
  std::vector<uint8_t> buffer(4 * kMiB);
  std::vector<uint8_t> got(next.size());
  InFlight in_flight;

  // Receive posted first, shorter than the message.
  auto recv = in_flight(ranks[0]->irecv(1, 5, buffer.data(), 50));
  ASSERT_FALSE(error_of(*in_flight(ranks[1]->isend(0, 5, small.data(), small.size()))));
  auto error = error_of(*recv);
  ASSERT_TRUE(error);
  EXPECT_EQ(error->kind(), ErrorKind::kSizeMismatch);
  EXPECT_EQ(error->peer(), 1);
  EXPECT_TRUE(contains(error->what(), "expected 50 bytes")) << error->what();
  EXPECT_TRUE(contains(error->what(), "sent 100 bytes")) << error->what();
  EXPECT_TRUE(contains(error->what(), "rank 1")) << error->what();

  // Message first (striped), receive posted later and longer.
  ASSERT_FALSE(error_of(*in_flight(ranks[1]->isend(0, 5, large.data(), large.size()))));
  std::this_thread::sleep_for(100ms);
  error = error_of(*in_flight(ranks[0]->irecv(1, 5, buffer.data(), buffer.size())));
  ASSERT_TRUE(error);
  EXPECT_EQ(error->kind(), ErrorKind::kSizeMismatch);

  // A striped message meeting a posted short receive: its later pieces must be dropped.
  recv = in_flight(ranks[0]->irecv(1, 5, buffer.data(), kMiB));
  ASSERT_FALSE(error_of(*in_flight(ranks[1]->isend(0, 5, large.data(), large.size()))));
  error = error_of(*recv);
  ASSERT_TRUE(error);
  EXPECT_EQ(error->kind(), ErrorKind::kSizeMismatch);

  // The stream of tag 5 is still in step.
  ASSERT_FALSE(error_of(*in_flight(ranks[1]->isend(0, 5, next.data(), next.size()))));
  error = error_of(*in_flight(ranks[0]->irecv(1, 5, got.data(), got.size())));
  ASSERT_FALSE(error) << error->what();
  EXPECT_EQ(got, next);
}

// The calls every transport refuses are checked on all of them by TransportArguments
// (transport_request_arguments_test.cc); the largest tag below the limit goes through.
TEST(ZmqTransport, TheLargestTagIsAccepted) {
  auto ranks = testing::connect_ranks(loopback_options("zmq", 1), 2);
  uint8_t byte = 0;
  uint8_t got = 1;
  InFlight in_flight;
  auto send = in_flight(ranks[0]->isend(1, transport::kMaxTag - 1, &byte, 1));
  EXPECT_FALSE(error_of(*in_flight(ranks[1]->irecv(0, transport::kMaxTag - 1, &got, 1))));
  EXPECT_FALSE(error_of(*send));
  EXPECT_EQ(got, 0);
}

TEST(ZmqTransport, CanceledReceiveConsumesItsMessage) {
  auto ranks = testing::connect_ranks(loopback_options("zmq", 2), 2);
  std::vector<uint8_t> buffer(64, 0);
  const auto first = pattern_bytes(64, 1);
  const auto second = pattern_bytes(64, 2);
  std::vector<uint8_t> got(64);
  InFlight in_flight;
  auto recv = in_flight(ranks[0]->irecv(1, 3, buffer.data(), buffer.size()));
  recv->cancel();
  auto error = error_of(*recv);
  ASSERT_TRUE(error);
  EXPECT_EQ(error->kind(), ErrorKind::kCanceled);

  // The first message with tag 3 belonged to the canceled receive and is dropped; the buffer
  // is not written after the cancel.
  ASSERT_FALSE(error_of(*in_flight(ranks[1]->isend(0, 3, first.data(), first.size()))));
  ASSERT_FALSE(error_of(*in_flight(ranks[1]->isend(0, 3, second.data(), second.size()))));
  error = error_of(*in_flight(ranks[0]->irecv(1, 3, got.data(), got.size())));
  ASSERT_FALSE(error) << error->what();
  EXPECT_EQ(got, second);
  EXPECT_EQ(buffer, std::vector<uint8_t>(64, 0));
}

TEST(ZmqTransport, CanceledSendFailsAndTheTagStaysInStep) {
  TransportOptions options = loopback_options("zmq", 1);
  options.chunk_bytes = 64 * 1024;  // 1024 pieces: most are still queued when cancel comes
  auto ranks = testing::connect_ranks(options, 2);
  const auto big = pattern_bytes(64 * kMiB, 1);
  std::vector<uint8_t> got(big.size());
  const auto next = pattern_bytes(1000, 2);
  std::vector<uint8_t> next_got(next.size());
  InFlight in_flight;
  auto send = in_flight(ranks[1]->isend(0, 9, big.data(), big.size()));
  send->cancel();
  const auto send_error = error_of(*send);
  ASSERT_TRUE(send_error);
  EXPECT_EQ(send_error->kind(), ErrorKind::kCanceled);

  // The receiver learns of the cancel, unless every piece had already left.
  const auto recv_error = error_of(*in_flight(ranks[0]->irecv(1, 9, got.data(), got.size())));
  if (recv_error) {
    EXPECT_EQ(recv_error->kind(), ErrorKind::kCanceled) << recv_error->what();
  } else {
    EXPECT_TRUE(got == big);
  }
  ASSERT_FALSE(error_of(*in_flight(ranks[1]->isend(0, 9, next.data(), next.size()))));
  ASSERT_FALSE(error_of(*in_flight(ranks[0]->irecv(1, 9, next_got.data(), next_got.size()))));
  EXPECT_EQ(next_got, next);
}

TEST(ZmqTransport, AbortFailsPendingAndLaterRequests) {
  auto ranks = testing::connect_ranks(loopback_options("zmq", 2), 2);
  std::vector<uint8_t> buffer(100);
  InFlight in_flight;
  auto recv = in_flight(ranks[0]->irecv(1, 1, buffer.data(), buffer.size()));
  ranks[0]->abort("test says stop");
  auto error = error_of(*recv);
  ASSERT_TRUE(error);
  EXPECT_EQ(error->kind(), ErrorKind::kAborted);
  EXPECT_TRUE(contains(error->what(), "test says stop")) << error->what();

  auto later = in_flight(ranks[0]->isend(1, 1, buffer.data(), buffer.size()));
  EXPECT_TRUE(later->done());  // failed at once, not through the progress thread
  error = error_of(*later);
  ASSERT_TRUE(error);
  EXPECT_EQ(error->kind(), ErrorKind::kAborted);
}

TEST(ZmqTransport, DestroyingATransportFailsItsPendingRequests) {
  auto ranks = testing::connect_ranks(loopback_options("zmq", 2), 2);
  std::vector<uint8_t> buffer(100);
  InFlight in_flight;
  auto recv = in_flight(ranks[0]->irecv(1, 1, buffer.data(), buffer.size()));
  ranks[0].reset();
  const auto error = error_of(*recv, 1s);
  ASSERT_TRUE(error);
  EXPECT_EQ(error->kind(), ErrorKind::kAborted);
}

// ---------------------------------------------------------------------------------------------
// Bootstrap

TEST(ZmqTransportBootstrap, AbsentPeerIsNamedWithinTheTimeout) {
  TransportOptions options = loopback_options("zmq", 2);
  options.connect_timeout = 500ms;
  transport::MemoryStore store;
  const auto start = Clock::now();
  const TransportError error = testing::creation_error(options, store, 0, 3);
  EXPECT_EQ(error.kind(), ErrorKind::kBootstrap);
  EXPECT_TRUE(contains(error.what(), "ranks [1, 2] did not publish")) << error.what();
  EXPECT_LT(seconds_since(start), 2.0);
}

TEST(ZmqTransportBootstrap, PeerThatNeverSaysHelloIsNamed) {
  TransportOptions options = loopback_options("zmq", 1);
  options.connect_timeout = 700ms;
  transport::MemoryStore store;
  // Rank 1 listens, says it reached rank 0, and never says hello.
  ::zmq::context_t context;
  ::zmq::socket_t silent(context, ::zmq::socket_type::router);
  silent.set(::zmq::sockopt::linger, 0);
  silent.bind("tcp://127.0.0.1:*");
  const std::string endpoint = silent.get(::zmq::sockopt::last_endpoint);
  publish_unauthenticated_record(store, 1, 2);
  const auto port = static_cast<uint16_t>(std::stoi(endpoint.substr(endpoint.rfind(':') + 1)));
  store.set(wire::address_key(1), wire::encode_address_record({{"127.0.0.1"}, {port}}));
  store.set(wire::reach_key(1), wire::encode_reach_record({1, {1, 0}}));
  const auto start = Clock::now();
  const TransportError error = testing::creation_error(options, store, 0, 2);
  EXPECT_EQ(error.kind(), ErrorKind::kBootstrap);
  EXPECT_TRUE(contains(error.what(), "no hello within 700 ms from ranks [1]")) << error.what();
  EXPECT_TRUE(contains(error.what(), endpoint)) << error.what();
  EXPECT_LT(seconds_since(start), 2.0);
}

TEST(ZmqTransportBootstrap, HelloFromAMismatchedPeerIsRejectedClearly) {
  struct Case {
    transport::core::Hello hello;
    uint16_t version;
    std::string expected;
  };
  const TransportOptions defaults = loopback_options("zmq", 1);
  std::vector<Case> cases(
      3, {HandRolledPeer::valid_hello(defaults), transport::core::kWireVersion, ""});
  cases[0].hello.size = 3;
  cases[0].expected = "believes the group has 3 ranks";
  cases[1].version = 7;
  cases[1].expected = "protocol version 7";
  cases[2].hello.chunk_bytes = kMiB;
  cases[2].expected = "TORCHWAN_CHUNK_BYTES";
  for (const Case& test_case : cases) {
    SCOPED_TRACE(test_case.expected);
    TransportOptions options = loopback_options("zmq", 1);
    options.connect_timeout = 5s;
    transport::MemoryStore store;
    auto rank0 =
        std::async(std::launch::async, [&] { return Transport::create(options, store, 0, 2); });
    HandRolledPeer peer(store, options);
    peer.send_frames(peer.hello_frames(test_case.hello, /*proven=*/true, test_case.version));
    try {
      rank0.get();
      ADD_FAILURE() << "accepted a bad hello";
    } catch (const TransportError& error) {
      EXPECT_EQ(error.kind(), ErrorKind::kBootstrap);
      EXPECT_TRUE(contains(error.what(), test_case.expected)) << error.what();
      EXPECT_TRUE(contains(error.what(), "rank 1")) << error.what();
    }
  }
}

// ---------------------------------------------------------------------------------------------
// Hostile or broken input

TEST(ZmqTransport, MalformedDataFromAPeerLosesThatPeerWithAProtocolError) {
  TransportOptions options = loopback_options("zmq", 1);
  transport::MemoryStore store;
  auto rank0_future =
      std::async(std::launch::async, [&] { return Transport::create(options, store, 0, 2); });
  HandRolledPeer peer(store, options);
  peer.send_frames(peer.hello_frames(HandRolledPeer::valid_hello(options)));
  auto rank0 = rank0_future.get();
  FailureLog failures;
  rank0->set_peer_failure_handler(failures.handler());

  std::vector<uint8_t> buffer(1000, 0);
  InFlight in_flight;
  auto recv = in_flight(rank0->irecv(1, 4, buffer.data(), buffer.size()));
  // A valid first piece, then one whose length disagrees with the first.
  wire::Header header;
  header.tag = 4;
  header.total_length = 1000;
  header.length = 500;
  peer.send(header, std::vector<uint8_t>(500, 1));
  header.total_length = 2000;
  header.offset = 500;
  peer.send(header, std::vector<uint8_t>(500, 2));

  const auto error = error_of(*recv);
  ASSERT_TRUE(error);
  EXPECT_EQ(error->kind(), ErrorKind::kProtocol);
  EXPECT_EQ(error->peer(), 1);
  EXPECT_TRUE(contains(error->what(), "disagree on its length")) << error->what();
  EXPECT_EQ(failures.seen_within(1s), std::vector<int>{1});
  const auto later = in_flight(rank0->irecv(1, 4, buffer.data(), buffer.size()));
  EXPECT_TRUE(later->done());
  const auto later_error = error_of(*later);
  ASSERT_TRUE(later_error);
  EXPECT_EQ(later_error->kind(), ErrorKind::kProtocol);
}

TEST(ZmqTransport, GarbageFromStrangersIsDroppedWithoutHarm) {
  TransportOptions options = loopback_options("zmq", 2);
  transport::MemoryStore store;
  auto ranks = connect_over(options, store, 2);
  FailureLog failures;
  ranks[0]->set_peer_failure_handler(failures.handler());
  const std::string endpoint = lane_endpoint(store, 0, 1);

  ::zmq::context_t context;
  std::mt19937 random(7);
  auto noise = [&](size_t size) {
    std::vector<uint8_t> bytes(size);
    for (auto& byte : bytes) byte = static_cast<uint8_t>(random());
    return bytes;
  };
  // An anonymous DEALER, and one claiming to be a rank that does not exist.
  for (const std::string& id : {std::string(), wire::routing_id(9, 1), wire::routing_id(1, 0)}) {
    ::zmq::socket_t stranger(context, ::zmq::socket_type::dealer);
    stranger.set(::zmq::sockopt::linger, 500);
    if (!id.empty()) stranger.set(::zmq::sockopt::routing_id, ::zmq::buffer(id));
    stranger.connect(endpoint);
    stranger.send(::zmq::buffer(noise(7)));
    const auto header = wire::encode_header(wire::Header{});
    stranger.send(::zmq::buffer(header), ::zmq::send_flags::sndmore);
    stranger.send(::zmq::buffer(noise(300)));
    for (int frame = 0; frame < 5; ++frame) {
      stranger.send(::zmq::buffer(noise(48)), ::zmq::send_flags::sndmore);
    }
    stranger.send(::zmq::buffer(noise(10 * kMiB)));  // over the frame limit: ZMQ cuts it off
  }
  // Raw bytes that are not even ZMTP.
  {
    const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
    ASSERT_GE(fd, 0);
    sockaddr_in address{};
    address.sin_family = AF_INET;
    address.sin_port =
        htons(static_cast<uint16_t>(std::stoi(endpoint.substr(endpoint.rfind(':') + 1))));
    inet_pton(AF_INET, "127.0.0.1", &address.sin_addr);
    ASSERT_EQ(::connect(fd, reinterpret_cast<sockaddr*>(&address), sizeof(address)), 0);
    const auto junk = noise(4096);
    EXPECT_GT(::send(fd, junk.data(), junk.size(), MSG_NOSIGNAL), 0);
    ::close(fd);
  }
  std::this_thread::sleep_for(300ms);

  // The group still works on every lane, and nobody was declared lost.
  const auto data = pattern_bytes(3 * kMiB, 9);
  std::vector<uint8_t> got(data.size());
  InFlight in_flight;
  auto recv = in_flight(ranks[0]->irecv(1, 1, got.data(), got.size()));
  ASSERT_FALSE(error_of(*in_flight(ranks[1]->isend(0, 1, data.data(), data.size()))));
  const auto error = error_of(*recv);
  ASSERT_FALSE(error) << error->what();
  EXPECT_TRUE(got == data);
  EXPECT_TRUE(failures.seen().empty());
}

// ---------------------------------------------------------------------------------------------
// Peer failure

TEST(ZmqTransport, DestroyedPeerIsLostAndLaterCallsFailAtOnce) {
  auto ranks = testing::connect_ranks(loopback_options("zmq", 2), 2);
  FailureLog failures;
  ranks[0]->set_peer_failure_handler(failures.handler());
  std::vector<uint8_t> buffer(100);
  InFlight in_flight;
  auto recv = in_flight(ranks[0]->irecv(1, 1, buffer.data(), buffer.size()));
  ranks[1].reset();
  auto error = error_of(*recv, 5s);
  ASSERT_TRUE(error);
  EXPECT_EQ(error->kind(), ErrorKind::kPeerLost);
  EXPECT_EQ(error->peer(), 1);
  EXPECT_TRUE(contains(error->what(), "lost rank 1")) << error->what();
  EXPECT_EQ(failures.seen_within(1s), std::vector<int>{1});

  auto later = in_flight(ranks[0]->isend(1, 1, buffer.data(), buffer.size()));
  EXPECT_TRUE(later->done());
  error = error_of(*later);
  ASSERT_TRUE(error);
  EXPECT_EQ(error->kind(), ErrorKind::kPeerLost);
}

TEST(ZmqTransport, LosingOnePeerLeavesTheOthersWorking) {
  for (const bool graceful : {true, false}) {
    SCOPED_TRACE(graceful ? "peer left" : "peer aborted");
    auto ranks = testing::connect_ranks(loopback_options("zmq", 2), 3);
    const auto data = pattern_bytes(300 * 1024, 3);  // zero-copy sized
    std::vector<uint8_t> got(data.size());
    InFlight in_flight;
    // Traffic with the peer that goes away, so its connections are busy when it goes.
    ASSERT_FALSE(error_of(*in_flight(ranks[2]->isend(0, 1, data.data(), data.size()))));
    ASSERT_FALSE(error_of(*in_flight(ranks[0]->irecv(2, 1, got.data(), got.size()))));
    auto lost = in_flight(ranks[0]->irecv(2, 2, got.data(), got.size()));
    if (graceful) {
      ranks[2].reset();
    } else {
      ranks[2]->abort("test");
    }
    ASSERT_TRUE(error_of(*lost));
    for (int round = 0; round < 20; ++round) {
      const int from = round % 2;
      auto recv = in_flight(ranks[static_cast<size_t>(1 - from)]->irecv(from, Tag(100 + round),
                                                                        got.data(), got.size()));
      ASSERT_FALSE(error_of(*in_flight(ranks[static_cast<size_t>(from)]->isend(
                                1 - from, Tag(100 + round), data.data(), data.size())),
                            5s));
      const auto error = error_of(*recv, 5s);
      ASSERT_FALSE(error) << error->what();
      ASSERT_TRUE(got == data);
    }
  }
}

TEST(ZmqTransport, CompletedSendsArriveEvenWhenTheSenderLeavesAtOnce) {
  // A small send completes once ZMQ accepted it; a sender destroyed right after must still
  // deliver it (goodbye handshake), and its peer then learns that it left.
  for (int round = 0; round < 5; ++round) {
    SCOPED_TRACE("round " + std::to_string(round));
    auto ranks = testing::connect_ranks(loopback_options("zmq", 4), 2);
    FailureLog failures;
    ranks[0]->set_peer_failure_handler(failures.handler());
    constexpr int kSmall = 1000;
    std::vector<std::vector<uint8_t>> sent(kSmall);
    std::vector<std::vector<uint8_t>> got(kSmall, std::vector<uint8_t>(16));
    const auto big = pattern_bytes(8 * kMiB + 5, static_cast<uint32_t>(round));
    std::vector<uint8_t> big_got(big.size());
    InFlight in_flight;
    std::vector<std::shared_ptr<Request>> recvs;
    for (int i = 0; i < kSmall; ++i) {
      sent[i] = pattern_bytes(16, static_cast<uint32_t>(i + 1000 * round));
      recvs.push_back(in_flight(ranks[0]->irecv(1, Tag(i), got[i].data(), 16)));
    }
    recvs.push_back(in_flight(ranks[0]->irecv(1, 99999, big_got.data(), big_got.size())));
    std::vector<std::shared_ptr<Request>> sends;
    sends.push_back(in_flight(ranks[1]->isend(0, 99999, big.data(), big.size())));
    for (int i = 0; i < kSmall; ++i) {
      sends.push_back(in_flight(ranks[1]->isend(0, Tag(i), sent[i].data(), 16)));
    }
    for (auto& send : sends) ASSERT_FALSE(error_of(*send));
    ranks[1].reset();
    for (auto& recv : recvs) {
      const auto error = error_of(*recv, 5s);
      ASSERT_FALSE(error) << error->what();
    }
    for (int i = 0; i < kSmall; ++i) ASSERT_EQ(got[i], sent[i]);
    ASSERT_TRUE(big_got == big);
    ASSERT_EQ(failures.seen_within(2s), std::vector<int>{1});
    std::lock_guard<std::mutex> lock(failures.mutex);
    EXPECT_TRUE(contains(failures.reasons[0], "left the group")) << failures.reasons[0];
  }
}

TEST(ZmqTransport, AGroupShutsDownQuickly) {
  // All at once, and one after the other (each rank then says goodbye to live and to lost peers).
  auto ranks = testing::connect_ranks(loopback_options("zmq", 2), 5);
  auto start = Clock::now();
  run_on_threads(5, [&](int rank) { ranks[static_cast<size_t>(rank)].reset(); });
  EXPECT_LT(seconds_since(start), 1.0);
  ranks = testing::connect_ranks(loopback_options("zmq", 2), 5);
  // After traffic in every direction.
  const auto data = pattern_bytes(300 * 1024, 5);
  std::vector<std::vector<uint8_t>> got(25, std::vector<uint8_t>(data.size()));
  {
    InFlight in_flight;
    std::vector<std::shared_ptr<Request>> requests;
    for (int from = 0; from < 5; ++from) {
      for (int to = 0; to < 5; ++to) {
        if (from == to) continue;
        requests.push_back(in_flight(ranks[static_cast<size_t>(to)]->irecv(
            from, 1, got[from * 5 + to].data(), data.size())));
        requests.push_back(
            in_flight(ranks[static_cast<size_t>(from)]->isend(to, 1, data.data(), data.size())));
      }
    }
    for (auto& request : requests) ASSERT_FALSE(error_of(*request));
  }
  start = Clock::now();
  for (auto& rank : ranks) rank.reset();
  EXPECT_LT(seconds_since(start), 1.0);
}

TEST(ZmqTransportPeerProcess, KilledPeerIsDetectedMidTransfer) {
  TempDir directory;
  TransportOptions options = loopback_options("zmq", 2);
  options.peer_timeout = 3s;
  constexpr size_t kWarmup = kMiB;
  constexpr size_t kHuge = size_t{1} << 30;
  ChildProcess child([&] {
    transport::FileStore store(directory.path().string());
    auto rank1 = Transport::create(options, store, 1, 2);
    const auto warmup = pattern_bytes(kWarmup, 1);
    // Untouched memory reads as the shared zero page: a 1 GiB send without 1 GiB of RAM.
    auto huge = std::make_unique_for_overwrite<uint8_t[]>(kHuge);
    auto first = rank1->isend(0, 1, warmup.data(), warmup.size());
    auto second = rank1->isend(0, 2, huge.get(), kHuge);
    second->wait(60s);  // the parent kills us long before
    return 3;
  });

  transport::FileStore store(directory.path().string());
  auto rank0 = Transport::create(options, store, 0, 2);
  FailureLog failures;
  rank0->set_peer_failure_handler(failures.handler());
  std::vector<uint8_t> warmup(kWarmup);
  auto huge = std::make_unique_for_overwrite<uint8_t[]>(kHuge);
  InFlight in_flight;
  ASSERT_FALSE(error_of(*in_flight(rank0->irecv(1, 1, warmup.data(), warmup.size()))));
  ASSERT_TRUE(warmup == pattern_bytes(kWarmup, 1));
  auto recv = in_flight(rank0->irecv(1, 2, huge.get(), kHuge));
  std::this_thread::sleep_for(100ms);
  ASSERT_FALSE(recv->done()) << "the 1 GiB transfer finished before the kill; test proves nothing";

  child.signal(SIGKILL);
  const auto killed = Clock::now();
  const auto error = error_of(*recv, 30s);
  const double detected_after = seconds_since(killed);
  child.kill_now();  // reaps it
  ASSERT_TRUE(error);
  EXPECT_EQ(error->kind(), ErrorKind::kPeerLost) << error->what();
  EXPECT_EQ(error->peer(), 1);
  EXPECT_TRUE(contains(error->what(), "lost rank 1")) << error->what();
  EXPECT_LT(detected_after, 3.0);
  EXPECT_EQ(failures.seen_within(1s), std::vector<int>{1});
}

TEST(ZmqTransportPeerProcess, StoppedPeerIsDetectedWithinThePeerTimeout) {
  TempDir directory;
  TransportOptions options = loopback_options("zmq", 2);
  options.peer_timeout = 2s;
  ChildProcess child([&] {
    transport::FileStore store(directory.path().string());
    auto rank1 = Transport::create(options, store, 1, 2);
    uint8_t byte = 42;
    rank1->isend(0, 1, &byte, 1)->wait(10s);
    std::this_thread::sleep_for(60s);  // stopped, then killed, by the parent
    return 3;
  });

  transport::FileStore store(directory.path().string());
  auto rank0 = Transport::create(options, store, 0, 2);
  uint8_t byte = 0;
  std::vector<uint8_t> buffer(100);
  InFlight in_flight;
  ASSERT_FALSE(error_of(*in_flight(rank0->irecv(1, 1, &byte, 1))));
  ASSERT_EQ(byte, 42);
  auto recv = in_flight(rank0->irecv(1, 2, buffer.data(), buffer.size()));

  child.signal(SIGSTOP);  // TCP stays open, but nothing answers
  const auto stopped = Clock::now();
  const auto error = error_of(*recv, 10s);
  const double detected_after = seconds_since(stopped);
  ASSERT_TRUE(error);
  EXPECT_EQ(error->kind(), ErrorKind::kPeerLost) << error->what();
  EXPECT_TRUE(contains(error->what(), "heartbeat")) << error->what();
  EXPECT_LT(detected_after, 2.0);
  EXPECT_GT(detected_after, 0.3);  // a heartbeat timeout, not an instant reset
}

}  // namespace
}  // namespace torchwan
