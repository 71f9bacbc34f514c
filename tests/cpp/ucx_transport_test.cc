// Tests of the UCX transport on loopback: ranks as threads of this process (connect_ranks), and
// for peer death a real child process killed with SIGKILL.
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <deque>
#include <filesystem>
#include <functional>
#include <map>
#include <memory>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include "poll_until.h"
#include "test_support.h"
#include "transport/striping.h"
#include "transport/transport.h"
#include "transport/ucx/ucx_config.h"
#include "transport/ucx/ucx_wire.h"

namespace torchwan::transport {
namespace {

using namespace std::chrono_literals;
using testing::connect_ranks;
using testing::loopback_options;
using testing::pattern_bytes;
using testing::run_on_threads;
using Clock = std::chrono::steady_clock;

constexpr size_t kMiB = size_t{1} << 20;

TransportOptions ucx_options(int lanes) { return loopback_options("ucx", lanes); }

// The error `request` failed with. Fails the test when it succeeded or did not finish in time.
TransportError failure_of(Request& request, std::chrono::milliseconds timeout = 10s) {
  try {
    request.wait(timeout);
  } catch (const TransportError& error) {
    if (request.done()) return error;
    ADD_FAILURE() << "request did not finish within " << timeout.count() << " ms";
    return error;
  }
  ADD_FAILURE() << "request succeeded but was expected to fail";
  return TransportError(ErrorKind::kInternal, "succeeded");
}

// Polls `condition` for up to `timeout`.
bool eventually(const std::function<bool()>& condition, std::chrono::milliseconds timeout = 2s) {
  return torchwan::testing::poll_until(condition, timeout, 1ms);
}

// Byte-exact comparison that reports the first differing offset instead of dumping buffers.
::testing::AssertionResult same_bytes(const std::vector<uint8_t>& expected,
                                      const std::vector<uint8_t>& actual) {
  if (expected.size() != actual.size()) {
    return ::testing::AssertionFailure()
           << "sizes differ: " << expected.size() << " vs " << actual.size();
  }
  if (expected.empty() || std::memcmp(expected.data(), actual.data(), expected.size()) == 0) {
    return ::testing::AssertionSuccess();
  }
  const auto mismatch = std::mismatch(expected.begin(), expected.end(), actual.begin());
  return ::testing::AssertionFailure()
         << "first difference at byte " << (mismatch.first - expected.begin()) << " of "
         << expected.size();
}

// Sends pattern bytes from `from` to `to` and checks they arrive exactly.
void send_and_check(Transport& from, Transport& to, Tag tag, size_t length, uint32_t seed) {
  const std::vector<uint8_t> sent = pattern_bytes(length, seed);
  std::vector<uint8_t> received(length, 0);
  auto recv = to.irecv(from.rank(), tag, received.data(), length);
  auto send = from.isend(to.rank(), tag, sent.data(), length);
  send->wait(60s);
  recv->wait(60s);
  EXPECT_TRUE(recv->ok());
  EXPECT_TRUE(same_bytes(sent, received)) << length << " bytes, tag " << tag;
}

class UcxLanes : public ::testing::TestWithParam<int> {};

TEST_P(UcxLanes, MessagesOfEverySizeArriveByteExact) {
  auto ranks = connect_ranks(ucx_options(GetParam()), 2);
  uint32_t seed = 1;
  for (size_t length : {size_t{0}, size_t{1}, size_t{4095}, kMiB + 3, 64 * kMiB}) {
    send_and_check(*ranks[0], *ranks[1], /*tag=*/length % 1000, length, seed++);
    send_and_check(*ranks[1], *ranks[0], /*tag=*/7, length, seed++);
  }
}

TEST_P(UcxLanes, Moves256MiB) {
  auto ranks = connect_ranks(ucx_options(GetParam()), 2);
  send_and_check(*ranks[0], *ranks[1], 3, 256 * kMiB, 99);
}

INSTANTIATE_TEST_SUITE_P(Lanes, UcxLanes, ::testing::Values(1, 4),
                         [](const auto& info) { return "lanes" + std::to_string(info.param); });

TEST(UcxTransport, StripedMessageReassemblesAcrossLanes) {
  TransportOptions options = ucx_options(4);
  options.stripe_min_bytes = 4096;
  options.chunk_bytes = 64 * 1024;
  const size_t length = kMiB + 7;  // stripes of unequal length, chunks of unequal length
  // The message really is cut over every lane, several chunks each.
  const auto plan = plan_pieces(options, 5, length);
  std::map<int, int> pieces_per_lane;
  for (const WirePiece& piece : plan) ++pieces_per_lane[piece.lane];
  ASSERT_EQ(pieces_per_lane.size(), 4u);
  for (const auto& [lane, pieces] : pieces_per_lane) EXPECT_GT(pieces, 1) << "lane " << lane;

  auto ranks = connect_ranks(options, 2);
  send_and_check(*ranks[0], *ranks[1], 5, length, 17);
  send_and_check(*ranks[1], *ranks[0], 5, length, 18);
}

TEST(UcxTransport, ThousandsOfSmallMessagesInFlight) {
  auto ranks = connect_ranks(ucx_options(2), 2);
  constexpr int kMessages = 5000;
  constexpr size_t kLength = 48;
  std::vector<std::vector<uint8_t>> sent(kMessages), received(kMessages);
  std::vector<std::shared_ptr<Request>> requests;
  for (int i = 0; i < kMessages; ++i) {
    sent[i] = pattern_bytes(kLength, static_cast<uint32_t>(i));
    received[i].assign(kLength, 0);
  }
  // Every receive and send is posted before any is waited for.
  for (int i = 0; i < kMessages; ++i) {
    requests.push_back(ranks[1]->irecv(0, static_cast<Tag>(i), received[i].data(), kLength));
  }
  for (int i = 0; i < kMessages; ++i) {
    requests.push_back(ranks[0]->isend(1, static_cast<Tag>(i), sent[i].data(), kLength));
  }
  for (auto& request : requests) request->wait(30s);
  for (int i = 0; i < kMessages; ++i) ASSERT_TRUE(same_bytes(sent[i], received[i])) << i;
}

TEST(UcxTransport, ReceivesPostedInReverseTagOrderMatchByTag) {
  TransportOptions options = ucx_options(4);
  options.stripe_min_bytes = 64 * 1024;
  auto ranks = connect_ranks(options, 2);
  // Mixed sizes: some travel whole on one lane, some striped over all four.
  const std::vector<size_t> lengths = {10, 200 * 1024, 3, kMiB + 1, 4096, 70000, 0, 123457};
  const int count = static_cast<int>(lengths.size());
  std::vector<std::vector<uint8_t>> sent(lengths.size()), received(lengths.size());
  std::vector<std::shared_ptr<Request>> requests;
  for (int i = count - 1; i >= 0; --i) {
    received[i].assign(lengths[i], 0);
    requests.push_back(
        ranks[1]->irecv(0, static_cast<Tag>(100 + i), received[i].data(), lengths[i]));
  }
  for (int i = 0; i < count; ++i) {
    sent[i] = pattern_bytes(lengths[i], static_cast<uint32_t>(i + 1000));
    requests.push_back(ranks[0]->isend(1, static_cast<Tag>(100 + i), sent[i].data(), lengths[i]));
  }
  for (auto& request : requests) request->wait(30s);
  for (int i = 0; i < count; ++i) EXPECT_TRUE(same_bytes(sent[i], received[i])) << "tag " << i;
}

TEST(UcxTransport, MessagesWithOneTagMatchInOrder) {
  TransportOptions options = ucx_options(4);
  options.stripe_min_bytes = 64 * 1024;
  auto ranks = connect_ranks(options, 2);
  // Striped and unstriped messages on one tag must not overtake each other.
  const std::vector<size_t> lengths = {100, 3 * kMiB, 5, 2 * kMiB + 1, 64 * 1024, 1};
  std::vector<std::vector<uint8_t>> sent, received(lengths.size());
  std::vector<std::shared_ptr<Request>> requests;
  for (size_t i = 0; i < lengths.size(); ++i) {
    sent.push_back(pattern_bytes(lengths[i], static_cast<uint32_t>(i + 50)));
    requests.push_back(ranks[0]->isend(1, 9, sent[i].data(), lengths[i]));
  }
  for (size_t i = 0; i < lengths.size(); ++i) {
    received[i].assign(lengths[i], 0);
    requests.push_back(ranks[1]->irecv(0, 9, received[i].data(), lengths[i]));
  }
  for (auto& request : requests) request->wait(30s);
  for (size_t i = 0; i < lengths.size(); ++i) EXPECT_TRUE(same_bytes(sent[i], received[i])) << i;
}

// A 1000-byte receive met by a message of `sent_bytes` fails with a size mismatch, which this
// returns; the sender is not left hanging either.
TransportError mismatched_receive_failure(size_t sent_bytes) {
  auto ranks = connect_ranks(ucx_options(2), 2);
  std::vector<uint8_t> sent(sent_bytes, 1), received(1000, 0);
  auto recv = ranks[1]->irecv(0, 4, received.data(), received.size());
  auto send = ranks[0]->isend(1, 4, sent.data(), sent.size());
  const TransportError error = failure_of(*recv);
  EXPECT_EQ(error.kind(), ErrorKind::kSizeMismatch) << error.what();
  EXPECT_NO_THROW(send->wait(10s));
  return error;
}

TEST(UcxTransport, LongerMessageThanPostedFailsWithSizeMismatch) {
  const TransportError error = mismatched_receive_failure(2000);
  EXPECT_EQ(error.peer(), 0);
  EXPECT_NE(std::string(error.what()).find("rank 0, tag 4: expected 1000 bytes"), std::string::npos)
      << error.what();
}

TEST(UcxTransport, ShorterMessageThanPostedFailsWithSizeMismatch) {
  const TransportError error = mismatched_receive_failure(500);
  EXPECT_NE(std::string(error.what()).find("expected 1000 bytes, received 500 bytes"),
            std::string::npos)
      << error.what();
}

TEST(UcxTransport, StripedSizeMismatchFailsInsteadOfHanging) {
  auto ranks = connect_ranks(ucx_options(4), 2);
  // The receiver expects a message striped over 4 lanes; the sender's smaller message travels
  // whole on one lane, so three of the receiver's pieces never get a message.
  std::vector<uint8_t> sent(100, 1), received(4 * kMiB, 0);
  auto recv = ranks[1]->irecv(0, 6, received.data(), received.size());
  auto send = ranks[0]->isend(1, 6, sent.data(), sent.size());
  const TransportError error = failure_of(*recv);
  EXPECT_EQ(error.kind(), ErrorKind::kSizeMismatch) << error.what();
  EXPECT_NO_THROW(send->wait(10s));
  // The connection is still good afterwards.
  send_and_check(*ranks[0], *ranks[1], 6, 3 * kMiB, 5);
}

TEST(UcxTransport, CanceledReceiveFailsAndLeavesLaterMessagesAlone) {
  auto ranks = connect_ranks(ucx_options(2), 2);
  std::vector<uint8_t> buffer(256, 0);
  auto recv = ranks[1]->irecv(0, 8, buffer.data(), buffer.size());
  std::this_thread::sleep_for(20ms);
  EXPECT_FALSE(recv->done());
  recv->cancel();
  const TransportError error = failure_of(*recv, 5s);
  EXPECT_EQ(error.kind(), ErrorKind::kCanceled) << error.what();
  // The canceled receive did not swallow the next message with its tag.
  send_and_check(*ranks[0], *ranks[1], 8, 256, 3);
}

TEST(UcxTransport, AbortFailsPendingAndLaterRequestsAndPeersNotice) {
  auto ranks = connect_ranks(ucx_options(2), 2);
  std::atomic<int> lost_peer{-1};
  ranks[1]->set_peer_failure_handler([&](int peer, const std::string&) { lost_peer = peer; });
  std::vector<uint8_t> buffer(64, 0);
  auto pending = ranks[0]->irecv(1, 1, buffer.data(), buffer.size());
  auto peer_pending = ranks[1]->irecv(0, 1, buffer.data(), buffer.size());

  ranks[0]->abort("test abort");
  ASSERT_TRUE(pending->done());
  const TransportError error = failure_of(*pending);
  EXPECT_EQ(error.kind(), ErrorKind::kAborted);
  EXPECT_NE(std::string(error.what()).find("test abort"), std::string::npos) << error.what();

  auto later = ranks[0]->isend(1, 2, buffer.data(), buffer.size());
  ASSERT_TRUE(later->done());
  EXPECT_EQ(failure_of(*later).kind(), ErrorKind::kAborted);

  // The aborted rank said goodbye: its peer fails at once instead of waiting for a timeout.
  const auto start = Clock::now();
  const TransportError peer_error = failure_of(*peer_pending, 5s);
  EXPECT_LT(Clock::now() - start, 1s);
  EXPECT_EQ(peer_error.kind(), ErrorKind::kPeerLost) << peer_error.what();
  EXPECT_EQ(peer_error.peer(), 0);
  EXPECT_NE(
      std::string(peer_error.what()).find("lost rank 0 (it aborted its transport: test abort)"),
      std::string::npos)
      << peer_error.what();
  // The handler runs right after the requests failed.
  EXPECT_TRUE(eventually([&] { return lost_peer.load() == 0; }));
}

TEST(UcxTransport, DestructionFailsPendingRequestsQuickly) {
  TransportOptions options = ucx_options(2);
  options.peer_timeout = 1000ms;
  auto ranks = connect_ranks(options, 2);
  std::vector<uint8_t> buffer(8 * kMiB, 0);
  auto pending_recv = ranks[0]->irecv(1, 1, buffer.data(), buffer.size());
  // A large send the peer never receives: UCX may hold it until its endpoint closes, and the
  // destructor waits for it no longer than the peer timeout. (Sends are eager, so it may also
  // have been handed to the peer already, and then it succeeded.)
  auto pending_send = ranks[0]->isend(1, 2, buffer.data(), buffer.size());
  auto peer_recv = ranks[1]->irecv(0, 3, buffer.data(), 16);
  const auto start = Clock::now();
  ranks[0].reset();
  EXPECT_LT(Clock::now() - start, 3s);
  EXPECT_EQ(failure_of(*pending_recv).kind(), ErrorKind::kAborted);
  ASSERT_TRUE(pending_send->done());
  if (pending_send->error()) {
    EXPECT_EQ(failure_of(*pending_send).kind(), ErrorKind::kAborted);
  }
  // The survivor learns at once that rank 0 left, and why.
  const TransportError peer_error = failure_of(*peer_recv, 2s);
  EXPECT_EQ(peer_error.kind(), ErrorKind::kPeerLost);
  EXPECT_NE(std::string(peer_error.what()).find("shut down"), std::string::npos)
      << peer_error.what();
  // A request may outlive its transport; canceling it then is harmless.
  pending_recv->cancel();
}

TEST(UcxTransport, StripedMessageSentJustBeforeShutdownStillArrives) {
  auto ranks = connect_ranks(ucx_options(4), 2);
  const std::vector<uint8_t> sent = pattern_bytes(8 * kMiB + 5, 77);
  std::vector<uint8_t> received(sent.size(), 0);
  auto recv = ranks[1]->irecv(0, 1, received.data(), received.size());
  ranks[0]->isend(1, 1, sent.data(), sent.size())->wait(10s);
  ranks[0].reset();  // goodbye on lane 0 must not cut off data still arriving on lanes 1..3
  recv->wait(10s);
  EXPECT_TRUE(same_bytes(sent, received));
}

TEST(UcxTransport, AbsentPeerFailsBootstrapNamingIt) {
  TransportOptions options = ucx_options(2);
  options.connect_timeout = 1000ms;
  MemoryStore store;
  std::vector<std::string> errors(2);
  std::vector<ErrorKind> kinds(2, ErrorKind::kInternal);
  const auto start = Clock::now();
  // Ranks 0 and 1 of a 3-rank group; rank 2 never starts.
  run_on_threads(2, [&](int rank) {
    try {
      Transport::create(options, store, rank, 3);
      errors[rank] = "connected";
    } catch (const TransportError& error) {
      kinds[rank] = error.kind();
      errors[rank] = error.what();
    }
  });
  const auto elapsed = Clock::now() - start;
  for (int rank = 0; rank < 2; ++rank) {
    EXPECT_EQ(kinds[rank], ErrorKind::kBootstrap) << errors[rank];
    EXPECT_NE(errors[rank].find("rank [2] did not publish"), std::string::npos) << errors[rank];
  }
  EXPECT_GE(elapsed, 900ms);
  EXPECT_LT(elapsed, 5s);
}

TEST(UcxTransport, InvalidAddressRecordFailsBootstrap) {
  TransportOptions options = ucx_options(1);
  options.connect_timeout = 2000ms;
  MemoryStore store;
  store.set(ucx::address_key(1), {1, 2, 3, 4, 5});
  const TransportError error = testing::creation_error(options, store, 0, 2);
  EXPECT_EQ(error.kind(), ErrorKind::kBootstrap);
  EXPECT_EQ(error.peer(), 1);
  EXPECT_NE(std::string(error.what()).find("address record of rank 1"), std::string::npos)
      << error.what();
}

// Runs a 2-rank bootstrap where rank 1 uses options changed by `differ`; returns each rank's
// kBootstrap message (empty if it connected or failed otherwise).
std::vector<std::string> bootstrap_errors(const std::function<void(TransportOptions&)>& differ) {
  MemoryStore store;
  std::vector<std::string> errors(2);
  run_on_threads(2, [&](int rank) {
    TransportOptions options = ucx_options(2);
    options.connect_timeout = 3000ms;
    if (rank == 1) differ(options);
    try {
      Transport::create(options, store, rank, 2);
    } catch (const TransportError& error) {
      if (error.kind() == ErrorKind::kBootstrap) errors[rank] = error.what();
    }
  });
  return errors;
}

TEST(UcxTransport, DifferentLaneCountsAreRejected) {
  for (const std::string& error : bootstrap_errors([](auto& options) { options.lanes = 1; })) {
    EXPECT_NE(error.find("TORCHWAN_LANES must match"), std::string::npos) << error;
  }
}

TEST(UcxTransport, DifferentStripingIsRejected) {
  for (const std::string& error :
       bootstrap_errors([](auto& options) { options.chunk_bytes = 1 << 20; })) {
    EXPECT_NE(error.find("TORCHWAN_CHUNK_BYTES must match"), std::string::npos) << error;
  }
}

TEST(UcxWire, AddressRecordRoundTripsAndRejectsDamage) {
  ucx::AddressRecord record;
  record.rank = 7;
  record.stripe_min_bytes = (uint64_t{1} << 40) + 3;
  record.chunk_bytes = 4096;
  record.lane_addresses = {{1, 2, 3}, {4, 5}};
  const std::vector<uint8_t> bytes = ucx::encode_address_record(record);
  std::string why;
  const auto decoded = ucx::decode_address_record(bytes, why);
  ASSERT_TRUE(decoded) << why;
  EXPECT_EQ(decoded->rank, 7);
  EXPECT_EQ(decoded->stripe_min_bytes, record.stripe_min_bytes);
  EXPECT_EQ(decoded->chunk_bytes, 4096u);
  EXPECT_EQ(decoded->lane_addresses, record.lane_addresses);
  // Every truncation is rejected, never read past the end.
  for (size_t length = 0; length < bytes.size(); ++length) {
    const std::vector<uint8_t> cut(bytes.begin(), bytes.begin() + static_cast<long>(length));
    EXPECT_FALSE(ucx::decode_address_record(cut, why)) << length;
  }
  std::vector<uint8_t> longer = bytes;
  longer.push_back(0);
  EXPECT_FALSE(ucx::decode_address_record(longer, why));
  EXPECT_NE(why.find("trailing"), std::string::npos);
}

TEST(UcxWire, HelloAndControlTagsNeverMatchData) {
  EXPECT_NE(ucx::hello_wire_tag(0, 0) & ucx::kSourceTagMask, ucx::data_wire_tag(65534, 0));
  EXPECT_NE(ucx::control_wire_tag(0) & ucx::kSourceTagMask, ucx::data_wire_tag(65534, 0));
  EXPECT_NE(ucx::control_wire_tag(3), ucx::hello_wire_tag(3, 0));
}

TEST(UcxConfig, ChoosesTcpOnTheHostInterfaceAndKeepaliveWithinPeerTimeout) {
  TransportOptions options = ucx_options(2);
  options.peer_timeout = 5000ms;
  std::map<std::string, std::string> env;
  auto lookup = [&](const char* name) -> const char* {
    auto found = env.find(name);
    return found == env.end() ? nullptr : found->second.c_str();
  };
  auto settings_of = [&] {
    std::map<std::string, std::string> chosen;
    for (const auto& setting : ucx::choose_ucx_settings(options, lookup)) {
      chosen[setting.name] = setting.value;
    }
    return chosen;
  };
  auto chosen = settings_of();
  EXPECT_EQ(chosen["TLS"], "tcp");
  EXPECT_EQ(chosen["NET_DEVICES"], "lo");
  // Idle 2 s, then 3 probes 1 s apart: a vanished host is dropped after 5 s.
  EXPECT_EQ(chosen["KEEPIDLE"], "2.2s");
  EXPECT_EQ(chosen["KEEPINTVL"], "1.2s");
  EXPECT_EQ(chosen["KEEPCNT"], "3");
  EXPECT_EQ(chosen["KEEPALIVE_INTERVAL"], "1250ms");

  env["UCX_TLS"] = "tcp,self";  // the user's own choice wins
  env["UCX_NET_DEVICES"] = "eth0";
  env["UCX_TCP_KEEPIDLE"] = "1s";
  chosen = settings_of();
  EXPECT_EQ(chosen.count("TLS"), 0u);
  EXPECT_EQ(chosen.count("NET_DEVICES"), 0u);
  EXPECT_EQ(chosen.count("KEEPIDLE"), 0u);
  env["TORCHWAN_UCX_TLS"] = "tcp,posix";
  EXPECT_EQ(settings_of()["TLS"], "tcp,posix");

  EXPECT_EQ(ucx::interface_for_host("127.0.0.1").value_or(""), "lo");
  EXPECT_FALSE(ucx::interface_for_host("192.0.2.123"));  // TEST-NET-1, on no interface

  // UCX accepts every setting we choose (read_ucx_config throws otherwise) and applies them.
  ucx::ConfigPtr config = ucx::read_ucx_config(options);
  char* text = nullptr;
  size_t text_length = 0;
  FILE* stream = open_memstream(&text, &text_length);
  ucp_config_print(config.get(), stream, "torchwan", UCS_CONFIG_PRINT_CONFIG);
  std::fclose(stream);
  const std::string printed(text, text_length);
  std::free(text);
  if (std::getenv("UCX_TLS") == nullptr) {
    EXPECT_NE(printed.find("UCX_TLS=tcp\n"), std::string::npos) << printed;
  }
  if (std::getenv("UCX_NET_DEVICES") == nullptr) {
    EXPECT_NE(printed.find("UCX_NET_DEVICES=lo\n"), std::string::npos) << printed;
  }
}

// UCX applies our keepalive choice to its TCP sockets (UCX 1.13 silently ignores a misnamed
// transport setting, so only the sockets themselves prove it).
TEST(UcxConfig, TcpSocketsCarryKeepaliveDerivedFromPeerTimeout) {
  TransportOptions options = ucx_options(2);
  options.peer_timeout = 5000ms;
  if (std::getenv("UCX_TCP_KEEPIDLE") != nullptr) GTEST_SKIP() << "UCX_TCP_KEEPIDLE is set";
  auto ranks = connect_ranks(options, 2);
  int keepalive_sockets = 0;
  for (const auto& entry : std::filesystem::directory_iterator("/proc/self/fd")) {
    const int fd = std::stoi(entry.path().filename().string());
    int type = 0, enabled = 0;
    socklen_t size = sizeof(int);
    if (getsockopt(fd, SOL_SOCKET, SO_TYPE, &type, &size) != 0 || type != SOCK_STREAM) continue;
    size = sizeof(int);
    if (getsockopt(fd, SOL_SOCKET, SO_KEEPALIVE, &enabled, &size) != 0 || !enabled) continue;
    int idle = 0, interval = 0, probes = 0;
    size = sizeof(int);
    getsockopt(fd, IPPROTO_TCP, TCP_KEEPIDLE, &idle, &size);
    size = sizeof(int);
    getsockopt(fd, IPPROTO_TCP, TCP_KEEPINTVL, &interval, &size);
    size = sizeof(int);
    getsockopt(fd, IPPROTO_TCP, TCP_KEEPCNT, &probes, &size);
    EXPECT_EQ(idle, 2) << "fd " << fd;
    EXPECT_EQ(interval, 1) << "fd " << fd;
    EXPECT_EQ(probes, 3) << "fd " << fd;
    ++keepalive_sockets;
  }
  // Each lane's connection has keepalive on at least on its connecting side.
  EXPECT_GE(keepalive_sockets, 2);
}

// Runs rank 1 of a 2-rank group in a forked child process (bootstrapping through a FileStore in a
// fresh directory) and rank 0 here; kills the child with SIGKILL when this object goes away.
class ChildPeer {
 public:
  // `child_body` runs in the child with its connected transport; the child exits with 0 when it
  // returns and 100 when it throws.
  ChildPeer(const TransportOptions& options, const std::function<void(Transport&)>& child_body)
      : child_([&] {
          FileStore store(directory_.path().string());
          auto transport = Transport::create(options, store, 1, 2);
          child_body(*transport);
          return 0;
        }),
        store_(std::make_unique<FileStore>(directory_.path().string())) {}
  Store& store() { return *store_; }
  int signal(int number) { return child_.signal(number); }
  void kill_now() { child_.kill_now(); }

 private:
  testing::TempDir directory_;  // outlives the child, which is killed first
  testing::ChildProcess child_;
  std::unique_ptr<FileStore> store_;
};

TransportOptions peer_death_options() {
  TransportOptions options = ucx_options(2);
  options.connect_timeout = 15000ms;
  options.peer_timeout = 3000ms;
  return options;
}

// Waits for `request` to fail after the peer was killed at `killed_at`; checks it failed with
// kPeerLost naming rank 1 within the peer timeout.
void expect_lost_in_time(Request& request, Clock::time_point killed_at,
                         std::chrono::milliseconds peer_timeout) {
  const TransportError error = failure_of(request, peer_timeout + 2s);
  const auto detected_after = Clock::now() - killed_at;
  EXPECT_EQ(error.kind(), ErrorKind::kPeerLost) << error.what();
  EXPECT_EQ(error.peer(), 1);
  EXPECT_NE(std::string(error.what()).find("rank 1"), std::string::npos) << error.what();
  EXPECT_LT(detected_after, peer_timeout + 200ms);
  std::printf("[ucx] SIGKILLed peer detected after %.1f ms: %s\n",
              std::chrono::duration<double, std::milli>(detected_after).count(), error.what());
}

// Rank 1 streams 64 MiB messages to rank 0 until it is killed while rank 0 has receives pending.
TEST(UcxPeerDeath, PeerKilledMidTransferFailsPendingReceives) {
  const TransportOptions options = peer_death_options();
  constexpr size_t kLength = 64 * kMiB;
  ChildPeer child(options, [](Transport& transport) {
    const std::vector<uint8_t> data = pattern_bytes(kLength, 42);
    for (;;) transport.isend(0, 1, data.data(), data.size())->wait();
  });
  auto transport = Transport::create(options, child.store(), 0, 2);
  std::atomic<int> lost_peer{-1};
  transport->set_peer_failure_handler([&](int peer, const std::string&) { lost_peer = peer; });

  std::vector<uint8_t> first(kLength), second(kLength), never(16);
  transport->irecv(1, 1, first.data(), kLength)->wait(20s);
  EXPECT_TRUE(same_bytes(pattern_bytes(kLength, 42), first));
  auto mid_transfer = transport->irecv(1, 1, second.data(), kLength);
  auto never_sent = transport->irecv(1, 2, never.data(), never.size());

  child.kill_now();
  const auto killed_at = Clock::now();
  expect_lost_in_time(*never_sent, killed_at, options.peer_timeout);
  // The receive that was in flight finished one way or the other; it did not hang. (The engine
  // fails the peer's requests one after another, so this thread may wake between two of them.)
  ASSERT_TRUE(eventually([&] { return mid_transfer->done(); }, 1s));
  if (!mid_transfer->ok()) {
    EXPECT_EQ(failure_of(*mid_transfer).kind(), ErrorKind::kPeerLost);
  }
  EXPECT_TRUE(eventually([&] { return lost_peer.load() == 1; }));
  auto later = transport->isend(1, 3, never.data(), never.size());
  ASSERT_TRUE(later->done());
  EXPECT_EQ(failure_of(*later).kind(), ErrorKind::kPeerLost);
}

// Rank 1 in a child process that connects and then only sleeps, and rank 0 here with a receive
// from it that nothing will satisfy.
struct IdlePeer {
  explicit IdlePeer(const TransportOptions& options)
      : child(options,
              [](Transport&) {
                for (;;) std::this_thread::sleep_for(1s);
              }),
        transport(Transport::create(options, child.store(), 0, 2)),
        pending(transport->irecv(1, 2, never.data(), never.size())) {}

  ChildPeer child;
  std::unique_ptr<Transport> transport;
  std::vector<uint8_t> never = std::vector<uint8_t>(16);
  std::shared_ptr<Request> pending;
};

// No traffic is in flight when the idle peer dies, so only liveness checking can notice.
TEST(UcxPeerDeath, IdlePeerKilledFailsPendingReceive) {
  const TransportOptions options = peer_death_options();
  IdlePeer peer(options);
  std::this_thread::sleep_for(100ms);
  peer.child.kill_now();
  expect_lost_in_time(*peer.pending, Clock::now(), options.peer_timeout);
}

// Rank 1 is stopped with SIGSTOP: its sockets stay open and its kernel still acknowledges data, so
// only the missing heartbeats give it away.
TEST(UcxPeerDeath, StoppedPeerIsLostAfterPeerTimeout) {
  const TransportOptions options = peer_death_options();
  IdlePeer peer(options);
  std::this_thread::sleep_for(options.peer_timeout);  // heartbeats keep a live peer alive
  EXPECT_FALSE(peer.pending->done());
  ASSERT_EQ(peer.child.signal(SIGSTOP), 0);
  const auto stopped_at = Clock::now();
  const TransportError error = failure_of(*peer.pending, options.peer_timeout + 2s);
  const auto detected_after = Clock::now() - stopped_at;
  EXPECT_EQ(error.kind(), ErrorKind::kPeerLost) << error.what();
  EXPECT_NE(std::string(error.what()).find("nothing arrived from it"), std::string::npos)
      << error.what();
  EXPECT_LT(detected_after, options.peer_timeout + 300ms);
  EXPECT_GT(detected_after, options.peer_timeout / 2);
}

// Not a pass/fail benchmark, but it fails when throughput collapses (e.g. a lost wakeup that
// leaves transfers to the idle timer).
TEST(UcxThroughput, LoopbackOf64MiBMessages) {
  constexpr size_t kLength = 64 * kMiB;
  constexpr int kMessages = 24;
  for (int lanes : {1, 4}) {
    auto ranks = connect_ranks(ucx_options(lanes), 2);
    const std::vector<uint8_t> sent = pattern_bytes(kLength, 5);
    std::vector<std::vector<uint8_t>> buffers(2, std::vector<uint8_t>(kLength, 0));
    // Warm-up, which also faults in every page of both receive buffers.
    for (auto& buffer : buffers) {
      auto recv = ranks[1]->irecv(0, 1, buffer.data(), kLength);
      ranks[0]->isend(1, 1, sent.data(), kLength)->wait(30s);
      recv->wait(30s);
    }
    std::deque<std::shared_ptr<Request>> in_flight;
    const auto start = Clock::now();
    for (int i = 0; i < kMessages; ++i) {
      if (in_flight.size() >= 4) {  // two messages (a receive and a send each) in flight
        in_flight.front()->wait(30s);
        in_flight.pop_front();
        in_flight.front()->wait(30s);
        in_flight.pop_front();
      }
      in_flight.push_back(ranks[1]->irecv(0, 1, buffers[i % 2].data(), kLength));
      in_flight.push_back(ranks[0]->isend(1, 1, sent.data(), kLength));
    }
    for (auto& request : in_flight) request->wait(30s);
    const double seconds = std::chrono::duration<double>(Clock::now() - start).count();
    const double gigabytes_per_second = kMessages * static_cast<double>(kLength) / seconds / 1e9;
    std::printf("[ucx throughput] lanes=%d: %.2f GB/s (%d x 64 MiB in %.2f s)\n", lanes,
                gigabytes_per_second, kMessages, seconds);
    RecordProperty("gbps_lanes" + std::to_string(lanes), std::to_string(gigabytes_per_second));
    EXPECT_TRUE(same_bytes(sent, buffers[(kMessages - 1) % 2]));
    EXPECT_GT(gigabytes_per_second, 0.3);
  }
}

}  // namespace
}  // namespace torchwan::transport
