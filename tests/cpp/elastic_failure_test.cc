// Failure detection against real processes: members are forked, then frozen (SIGSTOP) or killed
// (SIGKILL), and the time until the survivors see the new epoch is measured.
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <unistd.h>

#include <iostream>
#include <memory>
#include <thread>

#include "elastic/coordinator.h"
#include "elastic/member.h"
#include "test_support.h"

namespace torchwan::elastic {
namespace {

using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;

// A free loopback port, chosen before forking so that children know where to register while the
// parent is still single-threaded (forking a process with running threads is not safe).
int free_port() {
  const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in address{};
  address.sin_family = AF_INET;
  address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  address.sin_port = 0;
  socklen_t length = sizeof(address);
  if (fd < 0 || ::bind(fd, reinterpret_cast<sockaddr*>(&address), sizeof(address)) != 0 ||
      ::getsockname(fd, reinterpret_cast<sockaddr*>(&address), &length) != 0) {
    if (fd >= 0) ::close(fd);
    return -1;
  }
  ::close(fd);
  return ntohs(address.sin_port);
}

MemberOptions member_options(int port, const std::string& name,
                             std::chrono::milliseconds heartbeat_interval) {
  MemberOptions options;
  options.coordinator = "tcp://127.0.0.1:" + std::to_string(port);
  options.job_id = "job";
  options.name = name;
  options.address = name + ":7000";
  options.heartbeat_interval = heartbeat_interval;
  options.coordinator_timeout = std::max(heartbeat_interval * 3, 1000ms);
  return options;
}

// A coordinator on `port` (where the children already register) with the default timing.
CoordinatorOptions coordinator_options(int port, size_t min_members) {
  CoordinatorOptions options;
  options.host = "127.0.0.1";
  options.port = port;
  options.job_id = "job";
  options.min_members = min_members;
  return options;
}

// A member running in its own process until killed; the ChildProcess kills and reaps it.
class ChildMember : public testing::ChildProcess {
 public:
  explicit ChildMember(const MemberOptions& options)
      : testing::ChildProcess([&] {
          Member member(options);
          while (true) ::pause();
          return 0;
        }) {}
};

long long to_ms(Clock::duration duration) {
  return std::chrono::duration_cast<std::chrono::milliseconds>(duration).count();
}

// Waits for the survivor to see an epoch above `after`, and returns how long that took.
Clock::duration time_to_new_epoch(Member& survivor, uint64_t after, Clock::time_point since,
                                  std::vector<std::string>* names) {
  const auto view = survivor.wait_for_epoch(after, 15000ms);
  const auto elapsed = Clock::now() - since;
  if (!view) {
    ADD_FAILURE() << "no new epoch";
    return elapsed;
  }
  for (const auto& member : view->members) names->push_back(member.name);
  return elapsed;
}

TEST(ElasticFailure, FrozenMemberIsRemovedAfterTheHeartbeatTimeout) {
  const int port = free_port();
  ASSERT_GT(port, 0);
  ChildMember b(member_options(port, "b", 100ms));
  ChildMember c(member_options(port, "c", 100ms));

  CoordinatorOptions options = coordinator_options(port, 3);
  options.heartbeat_timeout = 1000ms;
  Coordinator coordinator(options);
  coordinator.start();
  Member a(member_options(port, "a", 100ms));
  ASSERT_TRUE(a.wait_for_epoch(0, 10000ms).has_value());

  // Alive to the kernel (TCP stays open), silent to the coordinator.
  ASSERT_EQ(c.signal(SIGSTOP), 0);
  const auto start = Clock::now();
  std::vector<std::string> names;
  const auto detection = time_to_new_epoch(a, 1, start, &names);
  EXPECT_EQ(names, (std::vector<std::string>{"a", "b"}));
  std::cout << "SIGSTOP detection (timeout 1000 ms, interval 100 ms): " << to_ms(detection)
            << " ms\n";
  // About the timeout minus up to one heartbeat interval (slack below for a delayed last
  // heartbeat on a loaded machine); at most the timeout plus slack.
  EXPECT_GE(detection, 700ms);
  EXPECT_LT(detection, 1600ms);

  // Thawed, it learns it was removed and queues as a joiner instead of rejoining silently.
  ASSERT_EQ(c.signal(SIGCONT), 0);
  bool waiting = false;
  for (int i = 0; i < 200 && !waiting; ++i) {
    const auto snapshot = coordinator.snapshot();
    waiting = snapshot.waiting == std::vector<std::string>{"c"};
    std::this_thread::sleep_for(10ms);
  }
  EXPECT_TRUE(waiting);
  EXPECT_EQ(coordinator.snapshot().epoch, 2u);
}

TEST(ElasticFailure, KilledMemberReportedByAPeerIsRemovedUnderTwoSeconds) {
  // Default timing: heartbeats every second, heartbeat timeout 10 s. The peer's report plus the
  // killed member's silence confirm the loss long before the timeout.
  const int port = free_port();
  ASSERT_GT(port, 0);
  const MemberOptions defaults;
  ChildMember b(member_options(port, "b", defaults.heartbeat_interval));
  ChildMember c(member_options(port, "c", defaults.heartbeat_interval));

  const CoordinatorOptions options = coordinator_options(port, 3);
  ASSERT_EQ(options.heartbeat_timeout, 10000ms);
  Coordinator coordinator(options);
  coordinator.start();
  Member a(member_options(port, "a", defaults.heartbeat_interval));
  ASSERT_TRUE(a.wait_for_epoch(0, 10000ms).has_value());

  ASSERT_EQ(c.signal(SIGKILL), 0);
  const auto start = Clock::now();
  // What the data transport of "a" would do on the connection reset.
  a.report_peer_lost("c", "connection reset by peer");
  std::vector<std::string> names;
  const auto detection = time_to_new_epoch(a, 1, start, &names);
  EXPECT_EQ(names, (std::vector<std::string>{"a", "b"}));
  std::cout << "SIGKILL + peer report detection (defaults): " << to_ms(detection) << " ms\n";
  EXPECT_LT(detection, 2000ms);
}

TEST(ElasticFailure, KilledMemberReportedByTwoPeersIsRemovedAtOnce) {
  const int port = free_port();
  ASSERT_GT(port, 0);
  const MemberOptions defaults;
  ChildMember d(member_options(port, "d", defaults.heartbeat_interval));

  Coordinator coordinator(coordinator_options(port, 4));
  coordinator.start();
  std::vector<std::unique_ptr<Member>> survivors;
  for (const char* name : {"a", "b", "c"}) {
    survivors.push_back(
        std::make_unique<Member>(member_options(port, name, defaults.heartbeat_interval)));
  }
  for (auto& member : survivors) ASSERT_TRUE(member->wait_for_epoch(0, 10000ms).has_value());

  ASSERT_EQ(d.signal(SIGKILL), 0);
  const auto start = Clock::now();
  survivors[0]->report_peer_lost("d", "connection reset by peer");
  survivors[1]->report_peer_lost("d", "connection reset by peer");
  std::vector<std::string> names;
  const auto detection = time_to_new_epoch(*survivors[2], 1, start, &names);
  EXPECT_EQ(names, (std::vector<std::string>{"a", "b", "c"}));
  std::cout << "SIGKILL + two peer reports detection: " << to_ms(detection) << " ms\n";
  EXPECT_LT(detection, 500ms);
}

}  // namespace
}  // namespace torchwan::elastic
