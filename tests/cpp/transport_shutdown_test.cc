// An orderly departure must not lose data: whatever a rank sent before destroying its transport
// reaches a slower peer, even when that peer posts its receives after the departure, while a
// receive for a message that was never sent still fails promptly. Runs on every transport, with
// ranks as threads over real loopback sockets.
#include <gtest/gtest.h>
#include <signal.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <memory>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "test_support.h"
#include "transport/store.h"
#include "transport/transport.h"

namespace torchwan::transport {
namespace {

using namespace std::chrono_literals;
using testing::connect_ranks;
using testing::loopback_options;
using testing::pattern_bytes;
using Clock = std::chrono::steady_clock;

constexpr size_t kMiB = size_t{1} << 20;

class TransportShutdown : public ::testing::TestWithParam<std::string> {
 protected:
  TransportOptions options() const {
    TransportOptions options = loopback_options(GetParam(), 4);
    options.peer_timeout = 5000ms;
    return options;
  }
};

struct Message {
  Tag tag;
  std::vector<uint8_t> bytes;
};

// Striped multi-MiB messages that cover every lane, two on one tag (matched in order), and a few
// small ones that travel whole.
std::vector<Message> departure_messages() {
  std::vector<Message> messages;
  for (int i = 0; i < 5; ++i) {
    messages.push_back({static_cast<Tag>(10 + i % 4), pattern_bytes(6 * kMiB + 4099 * i, 100 + i)});
  }
  for (int i = 0; i < 3; ++i) {
    messages.push_back({static_cast<Tag>(50 + i), pattern_bytes(1000 + i, 200 + i)});
  }
  return messages;
}

bool same(const std::vector<uint8_t>& a, const std::vector<uint8_t>& b) {
  return a.size() == b.size() && std::memcmp(a.data(), b.data(), a.size()) == 0;
}

TEST_P(TransportShutdown, UnwaitedSendsReachAPeerThatReceivesLate) {
  auto ranks = connect_ranks(options(), 2);
  const std::vector<Message> messages = departure_messages();
  std::vector<std::shared_ptr<Request>> sends;
  for (const Message& message : messages) {
    sends.push_back(ranks[0]->isend(1, message.tag, message.bytes.data(), message.bytes.size()));
  }
  // Leaves at once, without waiting for its sends; the buffers stay valid until it is gone.
  std::thread leaver([&] { ranks[0].reset(); });

  std::this_thread::sleep_for(300ms);
  for (const Message& message : messages) {
    std::vector<uint8_t> received(message.bytes.size(), 0);
    auto recv = ranks[1]->irecv(0, message.tag, received.data(), received.size());
    EXPECT_NO_THROW(recv->wait(10s)) << "tag " << message.tag;
    EXPECT_TRUE(same(message.bytes, received)) << "tag " << message.tag;
    std::this_thread::sleep_for(20ms);  // a slow consumer
  }
  leaver.join();
  for (const auto& send : sends) {
    ASSERT_TRUE(send->done());
    EXPECT_TRUE(send->ok());
  }
}

// Rank 1, in another process, is frozen while rank 0 sends, heartbeats and leaves; when it thaws,
// it reads the heartbeats, the goodbye behind them and the closed connection all at once. The
// goodbye must still count before the close: rank 1 then receives everything rank 0 sent instead
// of declaring it lost.
TEST_P(TransportShutdown, FrozenReceiverStillGetsWhatADepartedPeerSent) {
  // Rank 1 stays frozen through rank 0's wait below and its leaving (up to 2 s waiting for
  // goodbye acknowledgements that a frozen peer cannot send): all of it within the peer timeout,
  // or rank 1 would rightly give up on rank 0 when it thaws.
  TransportOptions shared = options();
  shared.peer_timeout = 6000ms;
  testing::TempDir directory;
  const std::string store_path = (directory.path() / "store").string();
  const std::filesystem::path flag = directory.path() / "rank0-left";
  std::filesystem::create_directory(store_path);
  std::vector<std::vector<uint8_t>> messages;
  for (int i = 0; i < 4; ++i) messages.push_back(pattern_bytes(1000 + 4099 * i, 300 + i));
  // Forked before this process creates any thread or transport.
  testing::ChildProcess child([&] {
    FileStore store(store_path);
    auto rank1 = Transport::create(shared, store, 1, 2);
    while (!std::filesystem::exists(flag)) std::this_thread::sleep_for(10ms);
    for (size_t i = 0; i < messages.size(); ++i) {
      std::vector<uint8_t> received(messages[i].size());
      rank1->irecv(0, 20 + i, received.data(), received.size())->wait(10s);
      if (!same(messages[i], received)) throw std::runtime_error("message " + std::to_string(i));
    }
    return 0;
  });
  FileStore store(store_path);
  auto rank0 = Transport::create(shared, store, 0, 2);
  std::this_thread::sleep_for(200ms);
  ASSERT_EQ(child.signal(SIGSTOP), 0);
  std::vector<std::shared_ptr<Request>> sends;
  for (size_t i = 0; i < messages.size(); ++i) {
    sends.push_back(rank0->isend(1, 20 + i, messages[i].data(), messages[i].size()));
  }
  // Long enough for a heartbeat (every quarter of the peer timeout) to queue behind the data.
  std::this_thread::sleep_for(shared.peer_timeout / 3);
  rank0.reset();
  for (const auto& send : sends) EXPECT_TRUE(send->ok());
  std::ofstream(flag.string()) << "left";
  ASSERT_EQ(child.signal(SIGCONT), 0);
  EXPECT_EQ(child.wait_for_exit(30s), 0)
      << "rank 1 did not receive every message (100: a receive failed or the bytes differ)";
}

TEST_P(TransportShutdown, CompletedSendsSurviveTheSendersExit) {
  auto ranks = connect_ranks(options(), 2);
  // Posted before the departure, for a message that never comes.
  std::vector<uint8_t> never(64, 0);
  auto orphan = ranks[1]->irecv(0, 99, never.data(), never.size());

  const std::vector<Message> messages = departure_messages();
  std::vector<std::shared_ptr<Request>> sends;
  std::vector<std::vector<uint8_t>> received;
  std::vector<std::shared_ptr<Request>> early;
  // The first striped message is received as it arrives; the rest only after the sender left.
  received.emplace_back(messages[0].bytes.size(), 0);
  early.push_back(ranks[1]->irecv(0, messages[0].tag, received[0].data(), received[0].size()));
  for (size_t i : {0, 5, 6, 7}) {
    sends.push_back(
        ranks[0]->isend(1, messages[i].tag, messages[i].bytes.data(), messages[i].bytes.size()));
  }
  // Small messages complete at the sender as soon as they are written.
  for (const auto& send : sends) EXPECT_NO_THROW(send->wait(10s));
  std::thread leaver([&] { ranks[0].reset(); });

  EXPECT_NO_THROW(early[0]->wait(10s));
  EXPECT_TRUE(same(messages[0].bytes, received[0]));
  // The small messages are still unclaimed when the sender is long gone.
  leaver.join();
  std::this_thread::sleep_for(200ms);
  for (size_t i = 5; i < messages.size(); ++i) {
    std::vector<uint8_t> bytes(messages[i].bytes.size(), 0);
    auto recv = ranks[1]->irecv(0, messages[i].tag, bytes.data(), bytes.size());
    EXPECT_NO_THROW(recv->wait(5s)) << "tag " << messages[i].tag;
    EXPECT_TRUE(same(messages[i].bytes, bytes)) << "tag " << messages[i].tag;
  }

  // The orphan can never be satisfied: it fails, naming the departure, and so do new requests.
  try {
    orphan->wait(5s);
    ADD_FAILURE() << "a receive for a message that was never sent succeeded";
  } catch (const TransportError& error) {
    EXPECT_EQ(error.kind(), ErrorKind::kPeerLost) << error.what();
  }
  const auto start = Clock::now();
  auto late = ranks[1]->irecv(0, 98, never.data(), never.size());
  EXPECT_THROW(late->wait(5s), TransportError);
  EXPECT_EQ(late->error() != nullptr, true);
  auto send = ranks[1]->isend(0, 1, never.data(), never.size());
  EXPECT_THROW(send->wait(5s), TransportError);
  EXPECT_LT(Clock::now() - start, 2s);
}

// Everything this process writes to stdout and stderr while it lives (UCX logs there).
class CapturedOutput {
 public:
  CapturedOutput() : path_("/tmp/torchwan-shutdown-output-XXXXXX") {
    const int fd = mkstemp(path_.data());
    std::fflush(stdout);
    std::fflush(stderr);
    saved_out_ = dup(1);
    saved_err_ = dup(2);
    dup2(fd, 1);
    dup2(fd, 2);
    close(fd);
  }
  ~CapturedOutput() {
    restore();
    std::remove(path_.c_str());
  }
  std::string text() {
    restore();
    std::ifstream file(path_);
    std::stringstream content;
    content << file.rdbuf();
    return content.str();
  }

 private:
  void restore() {
    if (saved_out_ < 0) return;
    std::fflush(stdout);
    std::fflush(stderr);
    dup2(saved_out_, 1);
    dup2(saved_err_, 2);
    close(saved_out_);
    close(saved_err_);
    saved_out_ = saved_err_ = -1;
  }
  std::string path_;
  int saved_out_ = -1;
  int saved_err_ = -1;
};

// UCX warns about every message still unmatched when a worker is destroyed; an orderly shutdown
// leaves none: heartbeats that raced the goodbye, goodbyes, and data nobody received.
TEST(UcxShutdown, LeavesNoUcxWarnings) {
  CapturedOutput output;
  {
    TransportOptions options = loopback_options("ucx", 2);
    options.peer_timeout = 400ms;  // a heartbeat every 100 ms
    auto ranks = connect_ranks(options, 3);
    const std::vector<uint8_t> big = pattern_bytes(8 * kMiB, 1);
    std::vector<uint8_t> got(big.size());
    auto recv = ranks[1]->irecv(0, 1, got.data(), got.size());
    ranks[0]->isend(1, 1, big.data(), big.size())->wait(10s);
    recv->wait(10s);
    std::this_thread::sleep_for(450ms);  // heartbeats in every direction
    // Never received: a small eager message and a large one's rendezvous requests.
    ranks[2]->isend(1, 7, big.data(), 100)->wait(10s);
    auto unreceived = ranks[2]->isend(0, 8, big.data(), big.size());
    ranks[2]->abort("leaving early");
    std::this_thread::sleep_for(50ms);
    ranks[0].reset();
    ranks[1].reset();
    ranks[2].reset();
  }
  const std::string text = output.text();
  EXPECT_EQ(text.find("UCX  WARN"), std::string::npos) << text;
}

INSTANTIATE_TEST_SUITE_P(AllTransports, TransportShutdown,
                         ::testing::ValuesIn(testing::transport_kinds()),
                         [](const auto& info) { return info.param; });

}  // namespace
}  // namespace torchwan::transport
