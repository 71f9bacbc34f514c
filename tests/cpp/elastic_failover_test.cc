// Coordinator failover over real loopback sockets, members as threads of this process: members
// given a list of coordinators move to the standby when the active one dies and keep their epoch;
// a standby never forms a job of its own and never takes one over with a minority.
#include <gtest/gtest.h>

#include <memory>
#include <thread>

#include "elastic/coordinator.h"
#include "elastic/errors.h"
#include "elastic/member.h"
#include "elastic_test_members.h"
#include "elastic_test_options.h"
#include "poll_until.h"

namespace torchwan::elastic {
namespace {

using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;
using testing::names_of;

constexpr auto kWait = 8000ms;  // bounds a failover: coordinator timeout + registration

// Failover timings: members give up on a silent coordinator after 0.5 s; a member falls silent
// after 1.5 s.
CoordinatorOptions fast_coordinator(size_t min_members, bool standby) {
  CoordinatorOptions options = testing::fast_coordinator_options(min_members);
  options.heartbeat_timeout = 1500ms;
  options.recovery_grace = 1000ms;
  options.standby = standby;
  return options;
}

MemberOptions fast_member(const std::string& coordinators, const std::string& name) {
  MemberOptions options = testing::fast_member_options(coordinators, name);
  options.coordinator_timeout = 500ms;
  return options;
}

std::vector<std::unique_ptr<Member>> start_members(const std::string& coordinators,
                                                   const std::vector<std::string>& names) {
  return testing::start_members(
      names, [&](const std::string& name) { return fast_member(coordinators, name); });
}

// Whether every member reached the first epoch within kWait.
bool all_in_first_epoch(const std::vector<std::unique_ptr<Member>>& members) {
  for (const auto& member : members) {
    if (!member->wait_for_epoch(0, kWait)) return false;
  }
  return true;
}

template <typename Predicate>
bool eventually(Predicate&& predicate, std::chrono::milliseconds timeout = kWait) {
  return torchwan::testing::poll_until(predicate, timeout);
}

struct Pair {
  std::unique_ptr<Coordinator> primary;
  std::unique_ptr<Coordinator> standby;
  std::string list;  // "primary,standby" as members are given it
};

Pair start_pair(size_t min_members) {
  Pair pair;
  pair.primary = std::make_unique<Coordinator>(fast_coordinator(min_members, false));
  pair.standby = std::make_unique<Coordinator>(fast_coordinator(min_members, true));
  pair.primary->start();
  pair.standby->start();
  pair.list = pair.primary->endpoint() + "," + pair.standby->endpoint();
  return pair;
}

TEST(ElasticFailover, MembersMoveToTheStandbyAndKeepTheirEpoch) {
  Pair pair = start_pair(3);
  auto members = start_members(pair.list, {"a", "b", "c"});
  ASSERT_TRUE(all_in_first_epoch(members));
  // The standby formed nothing while the primary ran, though nobody talks to it.
  EXPECT_EQ(pair.standby->snapshot().phase, CoordinatorPhase::kForming);

  pair.primary->stop();
  // All of epoch 1 comes over: the standby resumes it under the same number, so the members'
  // groups stay valid and nothing is rebuilt.
  ASSERT_TRUE(eventually([&] {
    const auto snapshot = pair.standby->snapshot();
    return snapshot.phase == CoordinatorPhase::kRunning && snapshot.epoch == 1 &&
           snapshot.members.size() == 3;
  }));
  for (auto& member : members) {
    EXPECT_EQ(member->current()->epoch, 1u);
    EXPECT_EQ(member->coordinator(), pair.standby->endpoint());
    EXPECT_TRUE(eventually([&] { return member->state() == MemberState::kActive; }));
  }

  // The job still admits and removes members: a joiner tries the dead primary first.
  Member joiner(fast_member(pair.list, "d"));
  ASSERT_TRUE(eventually([&] { return pair.standby->snapshot().waiting.size() == 1; }));
  members[0]->request_new_epoch();
  const auto joined = joiner.wait_for_epoch(0, kWait);
  ASSERT_TRUE(joined);
  EXPECT_EQ(joined->epoch, 2u);
  EXPECT_EQ(names_of(joined->members), (std::vector<std::string>{"a", "b", "c", "d"}));
  members[1]->leave();
  const auto after_leave = members[0]->wait_for_epoch(2, kWait);
  ASSERT_TRUE(after_leave);
  EXPECT_EQ(names_of(after_leave->members), (std::vector<std::string>{"a", "c", "d"}));
}

TEST(ElasticFailover, StandbyNeverFormsAJobFromFreshMembers) {
  Coordinator standby(fast_coordinator(1, true));
  standby.start();
  Member member(fast_member(standby.endpoint(), "a"));
  EXPECT_FALSE(member.wait_for_epoch(0, 1500ms));
  const auto snapshot = standby.snapshot();
  EXPECT_EQ(snapshot.phase, CoordinatorPhase::kForming);
  EXPECT_EQ(snapshot.waiting, std::vector<std::string>{"a"});
}

TEST(ElasticFailover, StandbyRefusesAMinorityAndStaysReady) {
  Pair pair = start_pair(3);
  auto members = start_members(pair.list, {"a", "b", "c"});
  ASSERT_TRUE(all_in_first_epoch(members));
  // The primary dies with two of three members: one of three must not carry the job on.
  pair.primary->stop();
  members[1]->close();
  members[2]->close();
  try {
    while (members[0]->wait_for_epoch(1, 3 * kWait)) {
    }
    ADD_FAILURE() << "expected the lone member to be stopped";
  } catch (const ElasticError& error) {
    EXPECT_EQ(error.kind(), ElasticErrorKind::kStopped);
    EXPECT_NE(std::string(error.what()).find("not taking the job over"), std::string::npos)
        << error.what();
  }
  EXPECT_EQ(members[0]->current()->epoch, 1u);
  // The standby declined without stopping: it can still take the job over later.
  const auto snapshot = pair.standby->snapshot();
  EXPECT_EQ(snapshot.phase, CoordinatorPhase::kForming);
  EXPECT_EQ(snapshot.epoch, 0u);
}

TEST(ElasticFailover, JoinersAdmittedBehindACutOffMajorityCannotOutvoteIt) {
  // The active coordinator's side of a partition: b and c are cut off (they fall silent) just
  // before a step boundary admits three joiners into an epoch that b and c never receive. Counted
  // against that epoch, losing b and c would look like 2 of 6; against the last epoch everyone
  // confirmed ({a, b, c}) it is 2 of 3, and the job must stop here, since b and c may well be
  // running it on a standby.
  // b and c must be found silent only after the joiners are in: a heartbeat timeout well above
  // the time three registrations and one step boundary take on a loaded machine.
  CoordinatorOptions options = fast_coordinator(3, false);
  options.heartbeat_timeout = 4000ms;
  Coordinator coordinator(options);
  coordinator.start();
  auto members = start_members(coordinator.endpoint(), {"a", "b", "c"});
  ASSERT_TRUE(all_in_first_epoch(members));
  std::this_thread::sleep_for(400ms);  // a few heartbeats: everyone confirmed epoch 1
  members[1]->close();
  members[2]->close();
  auto joiners = start_members(coordinator.endpoint(), {"d", "e", "f"});
  ASSERT_TRUE(eventually([&] { return coordinator.snapshot().waiting.size() == 3; }, 3000ms));
  members[0]->request_new_epoch();
  const auto admitted = joiners[0]->wait_for_epoch(0, kWait);
  ASSERT_TRUE(admitted);
  EXPECT_EQ(admitted->world_size(), 6);
  ASSERT_TRUE(
      eventually([&] { return coordinator.snapshot().phase == CoordinatorPhase::kStopped; }));
  try {
    // b and c may be found silent in one tick or in two (an epoch without b first, which still
    // holds 2 of the 3 confirmed members); either way the job stops.
    uint64_t seen = admitted->epoch;
    while (const auto next = members[0]->wait_for_epoch(seen, kWait)) seen = next->epoch;
    ADD_FAILURE() << "expected the job to stop";
  } catch (const ElasticError& error) {
    EXPECT_EQ(error.kind(), ElasticErrorKind::kStopped);
    EXPECT_NE(std::string(error.what()).find("confirmed"), std::string::npos) << error.what();
  }
}

TEST(ElasticFailover, BadCoordinatorListsAreRefused) {
  for (const char* list : {"tcp://127.0.0.1:1,,tcp://127.0.0.1:2", "tcp://127.0.0.1:1,",
                           "tcp://127.0.0.1:1, tcp://127.0.0.1:1"}) {
    try {
      Member member(fast_member(list, "a"));
      ADD_FAILURE() << "accepted '" << list << "'";
    } catch (const ElasticError& error) {
      EXPECT_EQ(error.kind(), ElasticErrorKind::kInvalidArgument);
      EXPECT_NE(std::string(error.what()).find(list), std::string::npos) << error.what();
    }
  }
}

}  // namespace
}  // namespace torchwan::elastic
