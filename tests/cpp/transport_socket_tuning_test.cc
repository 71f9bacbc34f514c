// Socket tuning for long fat pipes: the plan that follows from the kernel's limits, its effect on
// real TCP sockets, and both transports' data connections actually carrying the chosen congestion
// control.
#include <dirent.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <string>
#include <thread>
#include <vector>

#include "test_support.h"
#include "transport/options.h"
#include "transport/socket_tuning.h"
#include "transport/transport.h"
#include "transport/ucx/ucx_config.h"

namespace torchwan::transport {
namespace {

using namespace std::chrono_literals;
constexpr size_t kMiB = size_t{1} << 20;

KernelNetLimits limits_with_cap(size_t cap) {
  KernelNetLimits limits;
  limits.send_buffer_cap = cap;
  limits.receive_buffer_cap = cap;
  limits.send_autotune_max = 4 * kMiB;
  limits.receive_autotune_max = 32 * kMiB;
  limits.congestion_controls = {"reno", "bbr", "cubic"};
  return limits;
}

TEST(SocketTuningPlan, BuffersAreSetOnlyWhereTheCapAdmitsMoreThanAutotuning) {
  TransportOptions options;
  ASSERT_EQ(options.socket_buffer_bytes, 64 * kMiB);
  ASSERT_EQ(options.congestion, "bbr");
  // Debian's default cap (4 MiB) would cut 64 MiB to far below autotuning: leave it alone.
  SocketTuning tuning = plan_socket_tuning(options, limits_with_cap(4 * kMiB));
  EXPECT_EQ(tuning.send_buffer, 0);
  EXPECT_EQ(tuning.receive_buffer, 0);
  EXPECT_EQ(tuning.congestion, "bbr");
  // A raised cap lets the full size apply.
  tuning = plan_socket_tuning(options, limits_with_cap(128 * kMiB));
  EXPECT_EQ(tuning.send_buffer, static_cast<int>(64 * kMiB));
  EXPECT_EQ(tuning.receive_buffer, static_cast<int>(64 * kMiB));
  // A size autotuning reaches anyway is not worth turning autotuning off for (receive: 32 MiB).
  options.socket_buffer_bytes = 16 * kMiB;
  tuning = plan_socket_tuning(options, limits_with_cap(128 * kMiB));
  EXPECT_EQ(tuning.send_buffer, static_cast<int>(16 * kMiB));
  EXPECT_EQ(tuning.receive_buffer, 0);
  options.socket_buffer_bytes = 0;
  EXPECT_EQ(plan_socket_tuning(options, limits_with_cap(128 * kMiB)).send_buffer, 0);
}

TEST(SocketTuningPlan, CongestionControlOnlyWhenTheKernelOffersIt) {
  TransportOptions options;
  KernelNetLimits limits = limits_with_cap(4 * kMiB);
  limits.congestion_controls = {"reno", "cubic"};
  SocketTuning tuning = plan_socket_tuning(options, limits);
  EXPECT_EQ(tuning.congestion, "");
  EXPECT_NE(describe_socket_tuning(options, limits, tuning).find("not offered"), std::string::npos);
  options.congestion = "cubic";
  EXPECT_EQ(plan_socket_tuning(options, limits).congestion, "cubic");
  options.congestion = "";
  EXPECT_EQ(plan_socket_tuning(options, limits).congestion, "");
}

TEST(SocketTuningOptions, FieldsParseAndAreValidated) {
  const auto& names = TransportOptions::field_names();
  EXPECT_NE(std::find(names.begin(), names.end(), "socket_buffer_bytes"), names.end());
  EXPECT_NE(std::find(names.begin(), names.end(), "congestion"), names.end());
  TransportOptions options;
  options.set("socket_buffer_bytes", "8388608");
  options.set("congestion", "cubic");
  EXPECT_EQ(options.socket_buffer_bytes, 8 * kMiB);
  EXPECT_EQ(options.congestion, "cubic");
  EXPECT_NO_THROW(options.validate());
  EXPECT_THROW(options.set("socket_buffer_bytes", "-1"), std::invalid_argument);
  options.congestion = "bbr; rm";
  EXPECT_THROW(options.validate(), std::invalid_argument);
  options.congestion = "bbr";
  options.socket_buffer_bytes = size_t{2} << 30;
  EXPECT_THROW(options.validate(), std::invalid_argument);
}

std::string congestion_of(int fd) {
  char name[32] = {};
  socklen_t length = sizeof(name);
  if (getsockopt(fd, IPPROTO_TCP, TCP_CONGESTION, name, &length) != 0) return {};
  return std::string(name);
}

// A congestion control the kernel offers that differs from the namespace default, so that
// setting it is observable; empty when there is none.
std::string non_default_congestion() {
  const KernelNetLimits limits = read_kernel_net_limits();
  const int probe = socket(AF_INET, SOCK_STREAM, 0);
  const std::string current = congestion_of(probe);
  close(probe);
  for (const std::string& name : limits.congestion_controls) {
    if (name != current) return name;
  }
  return {};
}

TEST(SocketTuningApply, SetsBuffersAndCongestionOnARealSocket) {
  const int fd = socket(AF_INET, SOCK_STREAM, 0);
  ASSERT_GE(fd, 0);
  const std::string wanted = non_default_congestion();
  if (wanted.empty()) {
    close(fd);
    GTEST_SKIP() << "the kernel offers a single congestion control";
  }
  const KernelNetLimits limits = read_kernel_net_limits();
  SocketTuning tuning;
  tuning.send_buffer = static_cast<int>(std::min<size_t>(limits.send_buffer_cap, kMiB));
  tuning.congestion = wanted;
  EXPECT_EQ(apply_socket_tuning(fd, tuning), "");
  EXPECT_EQ(congestion_of(fd), wanted);
  int send_buffer = 0;
  socklen_t length = sizeof(send_buffer);
  ASSERT_EQ(getsockopt(fd, SOL_SOCKET, SO_SNDBUF, &send_buffer, &length), 0);
  EXPECT_EQ(send_buffer, 2 * tuning.send_buffer);  // the kernel doubles it for bookkeeping
  // An unknown algorithm is reported, not thrown.
  EXPECT_NE(apply_socket_tuning(fd, SocketTuning{0, 0, "nosuchcc"}), "");
  close(fd);
}

// How many open TCP sockets of this process use congestion control `name`.
int sockets_using(const std::string& name) {
  int count = 0;
  DIR* directory = opendir("/proc/self/fd");
  if (directory == nullptr) return -1;
  while (const dirent* entry = readdir(directory)) {
    const int fd = std::atoi(entry->d_name);
    if (fd <= 2 || fd == dirfd(directory)) continue;
    int type = 0;
    socklen_t length = sizeof(type);
    if (getsockopt(fd, SOL_SOCKET, SO_TYPE, &type, &length) != 0 || type != SOCK_STREAM) continue;
    if (congestion_of(fd) == name) ++count;
  }
  closedir(directory);
  return count;
}

class SocketTuningData : public ::testing::TestWithParam<std::string> {};

TEST_P(SocketTuningData, ConnectionsUseTheChosenCongestionControl) {
  const std::string wanted = non_default_congestion();
  if (wanted.empty()) GTEST_SKIP() << "the kernel offers a single congestion control";
  const int before = sockets_using(wanted);
  TransportOptions options = testing::loopback_options(GetParam(), 2);
  options.congestion = wanted;
  auto ranks = testing::connect_ranks(options, 2);
  // Both ends of each lane's connection live in this process: at least 2 lanes x 2 ends. UCX's
  // are tuned before connecting returns; ZeroMQ tunes each one when its monitor reports it.
  const auto deadline = std::chrono::steady_clock::now() + (GetParam() == "zmq" ? 2s : 0s);
  while (sockets_using(wanted) - before < 4 && std::chrono::steady_clock::now() < deadline) {
    std::this_thread::sleep_for(10ms);
  }
  EXPECT_GE(sockets_using(wanted) - before, 4);
  // And they still carry data.
  const std::vector<uint8_t> sent = testing::pattern_bytes(3 * kMiB, 9);
  std::vector<uint8_t> got(sent.size());
  auto recv = ranks[1]->irecv(0, 1, got.data(), got.size());
  ranks[0]->isend(1, 1, sent.data(), sent.size())->wait(10s);
  recv->wait(10s);
  EXPECT_EQ(got, sent);
}

INSTANTIATE_TEST_SUITE_P(Transports, SocketTuningData,
                         ::testing::ValuesIn(testing::transport_kinds()),
                         [](const auto& info) { return info.param; });

TEST(SocketTuningUcx, BufferSizesBecomeUcxTcpSettings) {
  TransportOptions options = testing::loopback_options("ucx", 2);
  auto no_env = [](const char*) -> const char* { return nullptr; };
  auto find = [](const std::vector<ucx::UcxSetting>& settings, const std::string& name) {
    for (const auto& setting : settings) {
      if (setting.name == name) return setting.value;
    }
    return std::string();
  };
  auto settings = ucx::choose_ucx_settings(options, no_env, SocketTuning{67108864, 33554432, ""});
  EXPECT_EQ(find(settings, "SNDBUF"), "67108864");
  EXPECT_EQ(find(settings, "RCVBUF"), "33554432");
  settings = ucx::choose_ucx_settings(options, no_env, SocketTuning{});
  EXPECT_EQ(find(settings, "SNDBUF"), "");
  // The user's UCX_TCP_SNDBUF wins.
  auto user_set = [](const char* name) -> const char* {
    return std::string(name) == "UCX_TCP_SNDBUF" ? "1M" : nullptr;
  };
  settings = ucx::choose_ucx_settings(options, user_set, SocketTuning{67108864, 0, ""});
  EXPECT_EQ(find(settings, "SNDBUF"), "");
  // Eager sends of every size, for long links; again the user's choice wins.
  settings = ucx::choose_ucx_settings(options, no_env, SocketTuning{});
  EXPECT_EQ(find(settings, "RNDV_THRESH"), "inf");
  auto user_rndv = [](const char* name) -> const char* {
    return std::string(name) == "UCX_RNDV_THRESH" ? "8k" : nullptr;
  };
  EXPECT_EQ(find(ucx::choose_ucx_settings(options, user_rndv, SocketTuning{}), "RNDV_THRESH"), "");
}

}  // namespace
}  // namespace torchwan::transport
