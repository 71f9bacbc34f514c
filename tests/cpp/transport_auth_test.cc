// Tests of data-plane authentication (transport/secure/data_auth.h) on both transports: the right
// secret connects, a wrong or missing secret on one rank fails every rank clearly and in time,
// connections that cannot prove the secret are refused without harming the group, and hostile
// bytes on the data ports (garbage, port scans, oversized lengths) leave the group working.
#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <functional>
#include <future>
#include <map>
#include <mutex>
#include <optional>
#include <random>
#include <set>
#include <sstream>
#include <string>
#include <thread>
#include <vector>
#include <zmq.hpp>

#include "test_support.h"
#include "transport/secure/data_auth.h"
#include "transport/secure/job_secret.h"
#include "transport/transport.h"
#include "transport/zmq/zmq_records.h"
#include "transport/zmq/zmq_wire.h"
#include "zmq_hand_rolled_peer.h"

namespace torchwan {
namespace {

using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;
using testing::connect_each;
using testing::HandRolledPeer;
using testing::loopback_options;
using testing::pattern_bytes;
using testing::run_on_threads;
using testing::SecretDir;
using testing::take_transports;
using transport::ErrorKind;
using transport::Transport;
using transport::TransportError;
using transport::TransportOptions;
namespace wire = transport::zmq_detail;
namespace fs = std::filesystem;

bool contains(const std::string& text, const std::string& part) {
  return text.find(part) != std::string::npos;
}

// Every rank sends a distinct message to every other rank; all must arrive intact.
void expect_all_to_all_works(std::vector<std::unique_ptr<Transport>>& ranks, size_t bytes) {
  const int size = static_cast<int>(ranks.size());
  run_on_threads(size, [&](int rank) {
    Transport& self = *ranks[static_cast<size_t>(rank)];
    std::vector<std::vector<uint8_t>> out, in;
    std::vector<std::shared_ptr<transport::Request>> requests;
    for (int peer = 0; peer < size; ++peer) {
      out.push_back(pattern_bytes(bytes, static_cast<uint32_t>(rank * 100 + peer)));
      in.emplace_back(bytes, 0);
    }
    for (int peer = 0; peer < size; ++peer) {
      if (peer == rank) continue;
      const auto index = static_cast<size_t>(peer);
      requests.push_back(self.irecv(peer, 7, in[index].data(), bytes));
      requests.push_back(self.isend(peer, 7, out[index].data(), bytes));
    }
    for (auto& request : requests) request->wait(20s);
    for (int peer = 0; peer < size; ++peer) {
      if (peer == rank) continue;
      if (in[static_cast<size_t>(peer)] !=
          pattern_bytes(bytes, static_cast<uint32_t>(peer * 100 + rank))) {
        throw std::runtime_error("corrupted message");
      }
    }
  });
}

class TransportAuth : public ::testing::TestWithParam<std::string> {
 protected:
  TransportOptions options(int lanes = 2) const {
    TransportOptions result = loopback_options(GetParam(), lanes);
    result.connect_timeout = 5s;
    result.job_id = "auth-test";
    return result;
  }
  // Each rank's options with `secret_file(rank)` as its job secret ("" for none).
  std::function<TransportOptions(int)> secrets(std::function<std::string(int)> secret_file) const {
    return [this, secret_file](int rank) {
      TransportOptions result = options();
      result.secret_file = secret_file(rank);
      return result;
    };
  }
};

TEST_P(TransportAuth, RightSecretConnectsAndMovesData) {
  SecretDir dir;
  TransportOptions shared = options();
  shared.secret_file = dir.create("job.secret");
  transport::MemoryStore store;
  auto outcomes = connect_each(
      3, [&](int) { return shared; }, store);
  auto ranks = take_transports(outcomes);
  expect_all_to_all_works(ranks, 3 << 20);  // striped over the lanes
  expect_all_to_all_works(ranks, 100);
}

// Checks that every rank failed with kBootstrap, fast, naming `culprit` and `reason`.
void expect_all_fail(const std::vector<testing::ConnectOutcome>& outcomes, Clock::time_point start,
                     const std::string& culprit, const std::string& reason) {
  const auto elapsed = Clock::now() - start;
  EXPECT_LT(elapsed, 5s) << "not within the connect timeout";
  for (size_t rank = 0; rank < outcomes.size(); ++rank) {
    SCOPED_TRACE("rank " + std::to_string(rank));
    ASSERT_TRUE(outcomes[rank].error) << "connected despite the misconfiguration";
    const std::string what = outcomes[rank].error->what();
    EXPECT_EQ(outcomes[rank].error->kind(), ErrorKind::kBootstrap) << what;
    EXPECT_TRUE(contains(what, culprit + " failed authentication")) << what;
    EXPECT_TRUE(contains(what, reason)) << what;
  }
}

TEST_P(TransportAuth, WrongSecretOnOneRankFailsClearlyOnEveryRank) {
  SecretDir dir;
  const std::string right = dir.create("right.secret");
  const std::string wrong = dir.create("wrong.secret");
  transport::MemoryStore store;
  const auto start = Clock::now();
  auto outcomes =
      connect_each(3, secrets([&](int rank) { return rank == 2 ? wrong : right; }), store);
  expect_all_fail(outcomes, start, "rank(s) [2]", "wrong job secret");
  EXPECT_TRUE(contains(outcomes[2].error->what(), "this rank is one of them"));
  // Fingerprints may appear; the secret's bytes never do.
  std::ifstream file(wrong);
  std::string hex;
  file >> hex;
  for (const auto& outcome : outcomes) {
    EXPECT_FALSE(contains(outcome.error->what(), hex.substr(0, 16)));
  }
}

TEST_P(TransportAuth, NoSecretOnOneRankFailsClearlyOnEveryRank) {
  SecretDir dir;
  const std::string secret = dir.create("job.secret");
  transport::MemoryStore store;
  const auto start = Clock::now();
  auto outcomes =
      connect_each(3, secrets([&](int rank) { return rank != 1 ? secret : std::string(); }), store);
  expect_all_fail(outcomes, start, "rank(s) [1]", "no job secret");
}

TEST_P(TransportAuth, AnotherEpochOrJobIsRefused) {
  SecretDir dir;
  const std::string secret = dir.create("job.secret");
  for (const std::string& field : {std::string("epoch"), std::string("job_id")}) {
    SCOPED_TRACE(field);
    transport::MemoryStore store;
    auto outcomes = connect_each(
        2,
        [&](int rank) {
          TransportOptions result = options();
          result.secret_file = secret;
          if (rank == 1) result.set(field, "7");
          return result;
        },
        store);
    for (const auto& outcome : outcomes) {
      ASSERT_TRUE(outcome.error);
      EXPECT_EQ(outcome.error->kind(), ErrorKind::kBootstrap);
      EXPECT_TRUE(contains(outcome.error->what(), field == "epoch" ? "epoch 7" : "another job"))
          << outcome.error->what();
      // Every rank names the same culprit, rank 1 (a tie goes to the side of rank 0).
      EXPECT_TRUE(contains(outcome.error->what(), "rank(s) [1]")) << outcome.error->what();
    }
  }
}

TEST_P(TransportAuth, UnloadableSecretFileIsAnInvalidArgumentNamingThePath) {
  SecretDir dir;
  const std::string path = dir.create("job.secret");
  ::chmod(path.c_str(), 0644);  // readable by others: refused
  TransportOptions bad = options();
  bad.secret_file = path;
  transport::MemoryStore store;
  const TransportError error = testing::creation_error(bad, store, 0, 2);
  EXPECT_EQ(error.kind(), ErrorKind::kInvalidArgument);
  EXPECT_TRUE(contains(error.what(), path)) << error.what();
}

TEST_P(TransportAuth, AuthenticationCostsNoThroughput) {
  // Authentication happens once per connection; data frames only carry a few more header
  // bytes. Best of several runs, so a busy machine does not decide the outcome.
  SecretDir dir;
  const std::string secret = dir.create("job.secret");
  auto best_seconds = [&](bool authenticated) {
    TransportOptions shared = options();
    if (authenticated) shared.secret_file = secret;
    transport::MemoryStore store;
    auto outcomes = connect_each(
        2, [&](int) { return shared; }, store);
    auto ranks = take_transports(outcomes);
    constexpr size_t kBytes = size_t{16} << 20;
    std::vector<uint8_t> out = pattern_bytes(kBytes, 1), in(kBytes);
    double best = 1e9;
    for (int round = 0; round < 5; ++round) {
      const auto start = Clock::now();
      auto recv = ranks[1]->irecv(0, 1, in.data(), kBytes);
      auto send = ranks[0]->isend(1, 1, out.data(), kBytes);
      send->wait(30s);
      recv->wait(30s);
      best = std::min(best, std::chrono::duration<double>(Clock::now() - start).count());
    }
    EXPECT_TRUE(in == out);
    return best;
  };
  const double plain = best_seconds(false);
  const double authenticated = best_seconds(true);
  RecordProperty("plain_ms", std::to_string(plain * 1e3));
  RecordProperty("authenticated_ms", std::to_string(authenticated * 1e3));
  EXPECT_LT(authenticated, 2.0 * plain + 0.05)
      << "plain " << plain << " s, authenticated " << authenticated << " s";
}

// The TCP ports this process listens on, from /proc: every data port of both transports.
std::set<uint16_t> listening_ports_of_this_process() {
  std::set<std::string> inodes;
  for (const auto& entry : fs::directory_iterator("/proc/self/fd")) {
    std::error_code error;
    const std::string target = fs::read_symlink(entry.path(), error).string();
    if (!error && target.rfind("socket:[", 0) == 0) {
      inodes.insert(target.substr(8, target.size() - 9));
    }
  }
  std::set<uint16_t> ports;
  for (const char* table : {"/proc/net/tcp", "/proc/net/tcp6"}) {
    std::ifstream in(table);
    std::string line;
    std::getline(in, line);  // column names
    while (std::getline(in, line)) {
      std::istringstream fields(line);
      std::string slot, local, remote, state, queues, timer, retransmits, uid, timeout, inode;
      fields >> slot >> local >> remote >> state >> queues >> timer >> retransmits >> uid >>
          timeout >> inode;
      if (state != "0A" || inodes.count(inode) == 0) continue;  // 0A: LISTEN
      ports.insert(
          static_cast<uint16_t>(std::stoul(local.substr(local.rfind(':') + 1), nullptr, 16)));
    }
  }
  return ports;
}

// Opens a TCP connection to 127.0.0.1:port, writes `bytes` (if any) and closes it.
void poke(uint16_t port, const std::vector<uint8_t>& bytes) {
  const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  ASSERT_GE(fd, 0);
  sockaddr_in address{};
  address.sin_family = AF_INET;
  address.sin_port = htons(port);
  inet_pton(AF_INET, "127.0.0.1", &address.sin_addr);
  if (::connect(fd, reinterpret_cast<sockaddr*>(&address), sizeof(address)) == 0 &&
      !bytes.empty()) {
    (void)::send(fd, bytes.data(), bytes.size(), MSG_NOSIGNAL);
    std::this_thread::sleep_for(20ms);  // let the transport read before the close
  }
  ::close(fd);
}

TEST_P(TransportAuth, GarbageScansAndOversizedLengthsOnDataPortsLeaveTheGroupWorking) {
  SecretDir dir;
  TransportOptions shared = options();
  shared.secret_file = dir.create("job.secret");
  transport::MemoryStore store;
  // Declared before the transports, whose handlers write here until they are destroyed.
  std::mutex mutex;
  std::vector<std::string> failures;
  auto outcomes = connect_each(
      3, [&](int) { return shared; }, store);
  auto ranks = take_transports(outcomes);
  for (auto& rank : ranks) {
    rank->set_peer_failure_handler([&](int peer, const std::string& why) {
      std::lock_guard<std::mutex> lock(mutex);
      failures.push_back(std::to_string(peer) + ": " + why);
    });
  }

  std::set<uint16_t> ports;
  if (GetParam() == "zmq") {
    // The endpoints the transport published in the bootstrap store.
    for (int rank = 0; rank < 3; ++rank) {
      std::string why;
      const auto record = wire::decode_address_record(store.get(wire::address_key(rank), 1s), why);
      ASSERT_TRUE(record) << why;
      ports.insert(record->ports.begin(), record->ports.end());
    }
  } else {
    // UCX's worker addresses are opaque; its listening sockets are this process's.
    ports = listening_ports_of_this_process();
  }
  ASSERT_FALSE(ports.empty());

  std::mt19937 random(11);
  auto noise = [&](size_t size) {
    std::vector<uint8_t> bytes(size);
    for (auto& byte : bytes) byte = static_cast<uint8_t>(random());
    return bytes;
  };
  // A ZMTP 3 greeting (NULL mechanism), then a long frame announcing 2^62 bytes.
  std::vector<uint8_t> oversized = {0xFF, 0, 0, 0, 0, 0, 0, 0, 1, 0x7F, 3, 0, 'N', 'U', 'L', 'L'};
  oversized.resize(64, 0);
  oversized.insert(oversized.end(), {0x06, 0x40, 0, 0, 0, 0, 0, 0, 0});
  for (uint16_t port : ports) {
    SCOPED_TRACE("port " + std::to_string(port));
    poke(port, {});           // a port scanner: connect, close
    poke(port, noise(1));     // a stray byte
    poke(port, noise(4096));  // garbage
    poke(port, oversized);    // a frame length no receiver may trust
    poke(port, std::vector<uint8_t>(64, 0xFF));
  }
  std::this_thread::sleep_for(200ms);
  expect_all_to_all_works(ranks, 1 << 20);
  std::lock_guard<std::mutex> lock(mutex);
  EXPECT_TRUE(failures.empty()) << failures.front();
}

INSTANTIATE_TEST_SUITE_P(Transports, TransportAuth, ::testing::ValuesIn(testing::transport_kinds()),
                         [](const auto& info) { return info.param; });

// ---------------------------------------------------------------------------------------------
// ZeroMQ: a connection that claims to be a rank but cannot prove the secret is refused alone.

TEST(ZmqTransportAuth, ImpostorsAreRefusedAndTheRealRankStillGetsIn) {
  SecretDir dir;
  TransportOptions options = loopback_options("zmq", 1);
  options.connect_timeout = 10s;
  options.job_id = "auth-test";
  options.secret_file = dir.create("job.secret");
  transport::MemoryStore store;
  auto rank0 =
      std::async(std::launch::async, [&] { return Transport::create(options, store, 0, 2); });
  HandRolledPeer peer(store, options);

  // Three impostors under rank 1's routing id: no proof, garbage before the hello, a hello of
  // another epoch. Each is refused alone: rank 0 keeps waiting for the real rank 1.
  auto stale = peer.hello_frames(HandRolledPeer::valid_hello());
  stale[0][56] = 3;  // the header's epoch field
  const std::vector<std::vector<std::vector<uint8_t>>> impostors = {
      peer.hello_frames(HandRolledPeer::valid_hello(), /*proven=*/false), {{1, 2, 3}}, stale};
  for (const auto& frames : impostors) {
    peer.reconnect();
    peer.send_frames(frames);
    std::this_thread::sleep_for(300ms);
    peer.disconnect();
    std::this_thread::sleep_for(100ms);
    ASSERT_EQ(rank0.wait_for(0s), std::future_status::timeout) << "rank 0 gave up on rank 1";
  }
  peer.reconnect();
  peer.send_frames(peer.hello_frames(HandRolledPeer::valid_hello()));
  auto transport = rank0.get();  // throws if the real hello was not accepted
  EXPECT_EQ(transport->size(), 2);
  peer.disconnect();
}

TEST(ZmqTransportAuth, ARankWithoutTheSecretTimesOutNamingTheRefusal) {
  // A rank whose auth record claims the right secret but whose hello cannot prove it: the
  // connect timeout names the refused connection.
  SecretDir dir;
  TransportOptions options = loopback_options("zmq", 1);
  options.connect_timeout = 1500ms;
  options.secret_file = dir.create("job.secret");
  transport::MemoryStore store;
  auto rank0 =
      std::async(std::launch::async, [&] { return Transport::create(options, store, 0, 2); });
  HandRolledPeer peer(store, options);
  peer.send_frames(peer.hello_frames(HandRolledPeer::valid_hello(), /*proven=*/false));
  try {
    rank0.get();
    FAIL() << "accepted a hello without a proof";
  } catch (const TransportError& error) {
    EXPECT_EQ(error.kind(), ErrorKind::kBootstrap);
    EXPECT_TRUE(contains(error.what(), "does not prove the job secret")) << error.what();
    EXPECT_TRUE(contains(error.what(), "127.0.0.1")) << error.what();
  }
}

TEST(DataAuthRecord, DecoderRejectsEveryMalformedRecord) {
  transport::AuthRecord record;
  record.has_secret = true;
  record.fingerprint = "0123abcd";
  record.job_hash = 5;
  record.epoch = 9;
  const auto bytes = transport::encode_auth_record(record);
  std::string why;
  const auto decoded = transport::decode_auth_record(bytes, why);
  ASSERT_TRUE(decoded) << why;
  EXPECT_EQ(decoded->fingerprint, "0123abcd");
  EXPECT_EQ(decoded->epoch, 9u);
  for (size_t cut = 0; cut < bytes.size(); ++cut) {
    EXPECT_FALSE(transport::decode_auth_record(
        {bytes.begin(), bytes.begin() + static_cast<long>(cut)}, why));
  }
  auto bad = bytes;
  bad[0] ^= 1;
  EXPECT_FALSE(transport::decode_auth_record(bad, why));
  bad = bytes;
  bad[12] = 'z';  // not a hex digit in the fingerprint
  EXPECT_FALSE(transport::decode_auth_record(bad, why));
  bad = bytes;
  bad[8] = 4;  // unknown flag (1: has a secret, 2: has AES)
  EXPECT_FALSE(transport::decode_auth_record(bad, why));
}

}  // namespace
}  // namespace torchwan
