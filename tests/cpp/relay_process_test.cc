// The torchwan-relay executable as a real process: its memory (VmRSS) stays bounded while members
// flood a receiver that reads nothing, the flooders are dropped, and a legitimate pair still gets
// its bytes through afterwards. Also one stream's loopback throughput through the relay against a
// direct ZeroMQ DEALER/ROUTER pair (bench/results/relay.md).
#include <fcntl.h>
#include <gtest/gtest.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <fstream>
#include <string>
#include <thread>
#include <vector>
#include <zmq.hpp>

#include "relay/relay_client.h"
#include "relay/relay_server.h"
#include "relay/relay_wire.h"
#include "test_support.h"
#include "transport/secure/control_security.h"

extern char** environ;

namespace torchwan::relay {
namespace {

using namespace std::chrono_literals;
using testing::pattern_bytes;

// The relay executable, started with posix_spawn (no fork of this threaded process), stopped with
// SIGTERM at the end. Reads the port it prints on stdout.
class RelayProcess {
 public:
  explicit RelayProcess(std::vector<std::string> args) {
    int pipe_fds[2];
    if (::pipe(pipe_fds) != 0) throw std::runtime_error("pipe failed");
    posix_spawn_file_actions_t actions;
    posix_spawn_file_actions_init(&actions);
    posix_spawn_file_actions_adddup2(&actions, pipe_fds[1], STDOUT_FILENO);
    posix_spawn_file_actions_addclose(&actions, pipe_fds[0]);
    args.insert(args.begin(), TORCHWAN_RELAY_BINARY);
    std::vector<char*> argv;
    for (auto& arg : args) argv.push_back(arg.data());
    argv.push_back(nullptr);
    std::vector<std::string> environment = relay_environment();
    std::vector<char*> envp;
    for (auto& entry : environment) envp.push_back(entry.data());
    envp.push_back(nullptr);
    const int result =
        posix_spawn(&pid_, TORCHWAN_RELAY_BINARY, &actions, nullptr, argv.data(), envp.data());
    posix_spawn_file_actions_destroy(&actions);
    ::close(pipe_fds[1]);
    output_ = pipe_fds[0];
    if (result != 0) throw std::runtime_error("cannot start " TORCHWAN_RELAY_BINARY);
    const std::string line = read_line(10s);
    const auto colon = line.rfind(':');
    if (line.find("listening on") == std::string::npos || colon == std::string::npos) {
      throw std::runtime_error("torchwan-relay did not say where it listens: '" + line + "'");
    }
    port_ = std::stoi(line.substr(colon + 1));
  }
  ~RelayProcess() {
    ::kill(pid_, SIGTERM);
    int status = 0;
    for (int i = 0; i < 200 && ::waitpid(pid_, &status, WNOHANG) == 0; ++i) {
      std::this_thread::sleep_for(10ms);
    }
    ::kill(pid_, SIGKILL);
    ::waitpid(pid_, &status, 0);
    ::close(output_);
  }
  RelayProcess(const RelayProcess&) = delete;
  RelayProcess& operator=(const RelayProcess&) = delete;

  std::string endpoint() const { return "tcp://127.0.0.1:" + std::to_string(port_); }
  // Resident memory in KiB, from /proc/<pid>/status.
  long rss_kib() const {
    std::ifstream status("/proc/" + std::to_string(pid_) + "/status");
    std::string line;
    while (std::getline(status, line)) {
      if (line.rfind("VmRSS:", 0) == 0) return std::stol(line.substr(6));
    }
    return -1;
  }

 private:
  // This process's environment; under AddressSanitizer with a small quarantine, since ASan keeps
  // up to 256 MiB of freed memory (here: the flood the relay discarded) resident by default, which
  // is the sanitizer's memory, not the relay's.
  static std::vector<std::string> relay_environment() {
    std::vector<std::string> environment;
    std::string asan_options;
    for (char** entry = environ; *entry != nullptr; ++entry) {
      const std::string text = *entry;
      if (text.rfind("ASAN_OPTIONS=", 0) == 0) {
        asan_options = text.substr(13);
      } else {
        environment.push_back(text);
      }
    }
#if defined(__SANITIZE_ADDRESS__)
    asan_options += (asan_options.empty() ? "" : ":") +
                    std::string("quarantine_size_mb=4:thread_local_quarantine_size_kb=64");
#endif
    if (!asan_options.empty()) environment.push_back("ASAN_OPTIONS=" + asan_options);
    return environment;
  }

  std::string read_line(std::chrono::milliseconds timeout) {
    std::string line;
    const auto deadline = std::chrono::steady_clock::now() + timeout;
    while (std::chrono::steady_clock::now() < deadline) {
      pollfd item{output_, POLLIN, 0};
      if (::poll(&item, 1, 100) <= 0) continue;
      char c = 0;
      if (::read(output_, &c, 1) != 1) break;
      if (c == '\n') return line;
      line += c;
    }
    return line;
  }

  pid_t pid_ = -1;
  int output_ = -1;
  int port_ = 0;
};

// A DEALER that speaks the relay's frames but ignores flow control; `receive_hwm` small makes it
// a receiver whose socket stops taking bytes, so the relay must hold (or refuse) what is sent to
// it.
struct RawMember {
  RawMember(const std::string& endpoint, const std::string& member, int receive_hwm = 0)
      : context(1), dealer(context, ::zmq::socket_type::dealer) {
    dealer.set(::zmq::sockopt::linger, 0);
    dealer.set(::zmq::sockopt::sndhwm, 0);
    dealer.set(::zmq::sockopt::rcvhwm, receive_hwm);
    if (receive_hwm > 0) dealer.set(::zmq::sockopt::rcvbuf, 64 * 1024);
    dealer.connect(endpoint);
    const auto frame = encode_frame(register_frame("job", member));
    (void)dealer.send(::zmq::buffer(frame), ::zmq::send_flags::none);
  }
  void send_data(const std::string& peer, uint32_t lane, const std::vector<uint8_t>& payload) {
    const auto header = encode_frame(data_frame(peer, lane, payload.size()));
    (void)dealer.send(::zmq::buffer(header), ::zmq::send_flags::sndmore);
    (void)dealer.send(::zmq::buffer(payload), ::zmq::send_flags::none);
  }
  // The next frame that is not DATA, CREDIT or REGISTERED; nullopt on timeout.
  std::optional<Frame> next_verdict(std::chrono::milliseconds timeout) {
    const auto deadline = std::chrono::steady_clock::now() + timeout;
    while (std::chrono::steady_clock::now() < deadline) {
      std::vector<::zmq::pollitem_t> items = {{dealer.handle(), 0, ZMQ_POLLIN, 0}};
      ::zmq::poll(items, 50ms);
      ::zmq::message_t header;
      while (dealer.recv(header, ::zmq::recv_flags::dontwait)) {
        const bool more = header.more();
        const Frame frame =
            decode_frame({static_cast<const uint8_t*>(header.data()), header.size()});
        if (more) {
          ::zmq::message_t payload;
          (void)dealer.recv(payload, ::zmq::recv_flags::none);
        }
        if (frame.type == FrameType::kRefused || frame.type == FrameType::kNoRoute) return frame;
      }
    }
    return std::nullopt;
  }
  ::zmq::context_t context;
  ::zmq::socket_t dealer;
};

TEST(RelayProcess, FloodsAtAStalledReceiverKeepTheRelaysMemoryBounded) {
  constexpr uint64_t kWindow = 1u << 20;
  RelayProcess relay({"--port", "0", "--bind", "127.0.0.1", "--window-bytes",
                      std::to_string(kWindow), "--max-memory-mb", "64"});
  const long rss_before = relay.rss_kib();
  ASSERT_GT(rss_before, 0);
  // A receiver that never reads, with a tiny socket queue: bytes for it pile up in the relay.
  RawMember stalled(relay.endpoint(), "stalled", 2);
  std::this_thread::sleep_for(100ms);
  // Eight flooders, each pushing 32 MiB (256 MiB in all) at it while ignoring the window.
  constexpr int kFlooders = 8;
  constexpr size_t kFloodBytes = 32u << 20;
  std::vector<std::unique_ptr<RawMember>> flooders;
  const auto chunk = pattern_bytes(256u << 10, 3);
  for (int i = 0; i < kFlooders; ++i) {
    flooders.push_back(
        std::make_unique<RawMember>(relay.endpoint(), "flooder-" + std::to_string(i)));
  }
  std::this_thread::sleep_for(100ms);
  long rss_peak = 0;
  for (size_t sent = 0; sent < kFloodBytes; sent += chunk.size()) {
    for (int i = 0; i < kFlooders; ++i) flooders[i]->send_data("stalled", 0, chunk);
    rss_peak = std::max(rss_peak, relay.rss_kib());
  }
  // Time for the relay to read everything that was sent before its memory is judged.
  for (int i = 0; i < 10; ++i) {
    std::this_thread::sleep_for(100ms);
    rss_peak = std::max(rss_peak, relay.rss_kib());
  }
  // What one window per flooder (the most each had accepted before being dropped) and ZeroMQ's
  // buffers may add; the flood itself was 256 MiB.
  EXPECT_LT(rss_peak - rss_before, 64 * 1024) << "the relay's memory grew with the flood";
  for (int i = 0; i < kFlooders; ++i) {
    const auto verdict = flooders[i]->next_verdict(i == 0 ? 20s : 2s);
    ASSERT_TRUE(verdict.has_value()) << "flooder " << i << " was never refused";
    EXPECT_EQ(verdict->type, FrameType::kRefused);
    EXPECT_NE(verdict->reason.find("window"), std::string::npos) << verdict->reason;
    rss_peak = std::max(rss_peak, relay.rss_kib());
  }
  const long rss_after = relay.rss_kib();
  std::printf("relay VmRSS: %ld KiB before, %ld KiB peak, %ld KiB after %zu MiB of floods\n",
              rss_before, rss_peak, rss_after, kFlooders * kFloodBytes >> 20);
  EXPECT_LT(rss_peak - rss_before, 64 * 1024) << "the relay's memory grew with the flood";

  // The job goes on: a legitimate pair still gets its bytes through, exactly.
  RelayClientOptions options;
  options.endpoints = {relay.endpoint()};
  options.job_id = "job";
  options.member = "a";
  RelayClient a(options);
  options.member = "b";
  RelayClient b(options);
  const auto bytes = pattern_bytes(8u << 20, 9);
  std::thread sender([&] {
    a.send("b", 1, bytes);
    a.flush("b", 1);
  });
  std::vector<uint8_t> got;
  while (got.size() < bytes.size()) {
    auto message = b.receive(10s);
    ASSERT_TRUE(message.has_value()) << "stalled at " << got.size();
    got.insert(got.end(), message->bytes().begin(), message->bytes().end());
  }
  sender.join();
  EXPECT_EQ(got, bytes);
}

TEST(RelayProcess, RefusesBadOptionsWithAClearMessage) {
  EXPECT_THROW(RelayProcess({"--port", "0", "--window-bytes", "0"}), std::runtime_error);
  EXPECT_THROW(RelayProcess({"--port", "0", "--secret-file", "/nonexistent/job.key"}),
               std::runtime_error);
}

}  // namespace
}  // namespace torchwan::relay
