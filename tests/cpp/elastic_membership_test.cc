// Coordinator + members over real loopback sockets, members as threads of this process:
// formation, leave, joiners at step boundaries, peer-lost confirmation, quorum loss, coordinator
// restart, and malformed input.
#include <gtest/gtest.h>

#include <atomic>
#include <memory>
#include <thread>
#include <zmq.hpp>

#include "elastic/coordinator.h"
#include "elastic/errors.h"
#include "elastic/member.h"
#include "elastic/membership_wire.h"
#include "elastic_test_members.h"
#include "elastic_test_options.h"
#include "poll_until.h"

namespace torchwan::elastic {
namespace {

using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;
using testing::names_of;

constexpr auto kWait = 5000ms;  // generous bound for things that normally take milliseconds

CoordinatorOptions fast_coordinator(size_t min_members) {
  return testing::fast_coordinator_options(min_members);
}

MemberOptions fast_member(const std::string& endpoint, const std::string& name) {
  return testing::fast_member_options(endpoint, name);
}

std::vector<std::unique_ptr<Member>> start_members(const std::string& endpoint,
                                                   const std::vector<std::string>& names) {
  return testing::start_members(
      names, [&](const std::string& name) { return fast_member(endpoint, name); });
}

EpochView expect_epoch(Member& member, uint64_t newer_than) {
  auto view = member.wait_for_epoch(newer_than, kWait);
  if (!view) {
    ADD_FAILURE() << member.name() << " got no epoch above " << newer_than;
    return {};
  }
  return *view;
}

// Starts one member per name and waits until each of them is in the first epoch.
std::vector<std::unique_ptr<Member>> start_in_first_epoch(const std::string& endpoint,
                                                          const std::vector<std::string>& names) {
  auto members = start_members(endpoint, names);
  for (auto& member : members) expect_epoch(*member, 0);
  return members;
}

// Waits for `member` to pass epoch `newer_than`, then checks the epoch it reached and who is in it.
void expect_next_epoch(Member& member, uint64_t newer_than, uint64_t epoch,
                       const std::vector<std::string>& names) {
  const EpochView view = expect_epoch(member, newer_than);
  EXPECT_EQ(view.epoch, epoch) << member.name();
  EXPECT_EQ(names_of(view.members), names) << member.name();
}

// A started coordinator that a test can stop (->stop()) and then restart(): the new one listens on
// the same port with the same options, as a restarted coordinator process would.
class RestartableCoordinator {
 public:
  explicit RestartableCoordinator(size_t min_members) : options_(fast_coordinator(min_members)) {
    start_new();
    options_.port = coordinator_->port();
  }
  void restart() { start_new(); }
  Coordinator* operator->() const { return coordinator_.get(); }

 private:
  void start_new() {
    coordinator_ = std::make_unique<Coordinator>(options_);
    coordinator_->start();
  }

  CoordinatorOptions options_;
  std::unique_ptr<Coordinator> coordinator_;
};

template <typename Predicate>
bool eventually(Predicate&& predicate, std::chrono::milliseconds timeout = kWait) {
  return torchwan::testing::poll_until(predicate, timeout);
}

TEST(ElasticMembership, AllMembersSeeTheSameEpochAndOrder) {
  Coordinator coordinator(fast_coordinator(4));
  coordinator.start();
  auto members = start_members(coordinator.endpoint(), {"a", "b", "c", "d"});
  std::vector<EpochView> views;
  for (auto& member : members) views.push_back(expect_epoch(*member, 0));
  std::vector<bool> rank_seen(4, false);
  for (size_t i = 0; i < views.size(); ++i) {
    EXPECT_EQ(views[i].epoch, 1u);
    EXPECT_EQ(views[i].members, views[0].members);
    ASSERT_GE(views[i].rank, 0);
    EXPECT_EQ(views[i].members[static_cast<size_t>(views[i].rank)].name, members[i]->name());
    rank_seen[static_cast<size_t>(views[i].rank)] = true;
  }
  EXPECT_EQ(rank_seen, std::vector<bool>(4, true));
  const auto snapshot = coordinator.snapshot();
  EXPECT_EQ(snapshot.phase, CoordinatorPhase::kRunning);
  EXPECT_EQ(snapshot.epoch, 1u);
  EXPECT_EQ(snapshot.members, views[0].members);
  // Addresses, regions and capabilities travel with the member list.
  EXPECT_EQ(views[0].members[0].address, views[0].members[0].name + ".example:7000");
  EXPECT_EQ(views[0].members[0].region, "region-" + views[0].members[0].name);
  EXPECT_EQ(views[0].members[0].capabilities, std::vector<std::string>{"cpu"});
}

TEST(ElasticMembership, LeaveStartsANewEpochWithoutTheLeaver) {
  Coordinator coordinator(fast_coordinator(3));
  coordinator.start();
  auto members = start_in_first_epoch(coordinator.endpoint(), {"a", "b", "c"});
  members[1]->leave();
  for (size_t i : {0u, 2u}) expect_next_epoch(*members[i], 1, 2, {"a", "c"});
}

TEST(ElasticMembership, JoinerWaitsForTheStepBoundary) {
  Coordinator coordinator(fast_coordinator(2));
  coordinator.start();
  auto members = start_in_first_epoch(coordinator.endpoint(), {"a", "b"});

  Member joiner(fast_member(coordinator.endpoint(), "late"));
  // Members learn about the waiting joiner from the coordinator's heartbeat answers.
  EXPECT_TRUE(eventually([&] { return members[0]->num_waiting() == 1; }));
  EXPECT_EQ(coordinator.snapshot().waiting, std::vector<std::string>{"late"});
  EXPECT_EQ(joiner.state(), MemberState::kWaiting);
  EXPECT_FALSE(joiner.wait_for_epoch(0, 300ms).has_value()) << "admitted before a step boundary";
  EXPECT_EQ(coordinator.snapshot().epoch, 1u);

  members[0]->request_new_epoch();
  const EpochView view = expect_epoch(joiner, 0);
  EXPECT_EQ(view.epoch, 2u);
  EXPECT_EQ(names_of(view.members), (std::vector<std::string>{"a", "b", "late"}));
  EXPECT_EQ(view.rank, 2);
  EXPECT_EQ(expect_epoch(*members[1], 1).members, view.members);
  EXPECT_EQ(joiner.state(), MemberState::kActive);
}

TEST(ElasticMembership, StepBoundaryWithoutJoinersKeepsTheEpoch) {
  Coordinator coordinator(fast_coordinator(2));
  coordinator.start();
  auto members = start_in_first_epoch(coordinator.endpoint(), {"a", "b"});
  members[0]->request_new_epoch();
  EXPECT_FALSE(members[1]->wait_for_epoch(1, 300ms).has_value());
  EXPECT_EQ(coordinator.snapshot().epoch, 1u);
}

TEST(ElasticMembership, SingleReportNeedsSilenceToConfirm) {
  Coordinator coordinator(fast_coordinator(3));
  coordinator.start();
  auto members = start_in_first_epoch(coordinator.endpoint(), {"a", "b", "c"});

  // A report about a peer that keeps heartbeating is not enough.
  members[0]->report_peer_lost("b", "spurious timeout");
  EXPECT_FALSE(members[2]->wait_for_epoch(1, 700ms).has_value());

  // A report about a peer that went silent is confirmed after peer_lost_silence (300 ms here),
  // far below the heartbeat timeout (1 s).
  members[2]->close();
  const auto start = Clock::now();
  members[0]->report_peer_lost("c", "connection reset");
  const EpochView view = expect_epoch(*members[1], 1);
  const auto detection = Clock::now() - start;
  EXPECT_EQ(names_of(view.members), (std::vector<std::string>{"a", "b"}));
  EXPECT_LT(detection, 800ms);
  std::cout << "report+silence detection: "
            << std::chrono::duration_cast<std::chrono::milliseconds>(detection).count() << " ms\n";
}

TEST(ElasticMembership, TwoReportersRemoveAPeerAtOnce) {
  Coordinator coordinator(fast_coordinator(4));
  coordinator.start();
  auto members = start_in_first_epoch(coordinator.endpoint(), {"a", "b", "c", "d"});
  // "d" still heartbeats (it is only cut off from its peers), yet two reporters suffice.
  const auto start = Clock::now();
  members[0]->report_peer_lost("d", "connection reset");
  members[1]->report_peer_lost("d", "connection reset");
  const EpochView view = expect_epoch(*members[2], 1);
  EXPECT_EQ(names_of(view.members), (std::vector<std::string>{"a", "b", "c"}));
  // No wait is involved: the bound is slack for a loaded host, still under the heartbeat timeout.
  EXPECT_LT(Clock::now() - start, 900ms);
}

TEST(ElasticMembership, QuorumLossTellsSurvivorsToStop) {
  Coordinator coordinator(fast_coordinator(3));
  coordinator.start();
  auto members = start_in_first_epoch(coordinator.endpoint(), {"a", "b", "c"});
  std::atomic<bool> stop_called{false};
  members[0]->set_stop_callback([&](const std::string&) { stop_called = true; });

  // Two of three go silent at once: the survivor is a minority and must not carry on alone.
  members[1]->close();
  members[2]->close();
  try {
    // The two may time out in separate passes: an interim epoch {a, c} can come first.
    uint64_t seen = 1;
    while (auto view = members[0]->wait_for_epoch(seen, kWait)) seen = view->epoch;
    ADD_FAILURE() << "expected the job to stop";
  } catch (const ElasticError& error) {
    EXPECT_EQ(error.kind(), ElasticErrorKind::kStopped);
    EXPECT_NE(std::string(error.what()).find("quorum"), std::string::npos) << error.what();
  }
  // The callback runs on the member thread, possibly just after the waiter was released.
  EXPECT_TRUE(eventually([&] { return stop_called.load(); }));
  EXPECT_EQ(members[0]->state(), MemberState::kStopped);
  EXPECT_EQ(coordinator.snapshot().phase, CoordinatorPhase::kStopped);
}

TEST(ElasticMembership, VoluntaryLeavesNeverCostTheQuorum) {
  Coordinator coordinator(fast_coordinator(3));
  coordinator.start();
  auto members = start_in_first_epoch(coordinator.endpoint(), {"a", "b", "c"});
  members[1]->leave();
  members[2]->leave();
  expect_next_epoch(*members[0], 2, 3, {"a"});
}

TEST(ElasticMembership, CoordinatorRestartResumesTheSameHistory) {
  RestartableCoordinator coordinator(3);
  auto members = start_in_first_epoch(coordinator->endpoint(), {"a", "b", "c"});
  members[2]->leave();
  for (size_t i : {0u, 1u}) EXPECT_EQ(expect_epoch(*members[i], 1).epoch, 2u);

  coordinator->stop();
  coordinator.restart();
  // All of epoch 2's members re-register: the new coordinator resumes epoch 2 as it was.
  EXPECT_TRUE(eventually([&] {
    const auto snapshot = coordinator->snapshot();
    return snapshot.phase == CoordinatorPhase::kRunning && snapshot.members.size() == 2;
  }));
  EXPECT_EQ(coordinator->snapshot().epoch, 2u);
  EXPECT_EQ(members[0]->current()->epoch, 2u);
  EXPECT_TRUE(eventually([&] { return members[0]->state() == MemberState::kActive; }));

  // The next change gets a fresh number: no epoch number ever names two member lists.
  Member joiner(fast_member(coordinator->endpoint(), "d"));
  EXPECT_TRUE(eventually([&] { return coordinator->snapshot().waiting.size() == 1; }));
  members[1]->request_new_epoch();
  expect_next_epoch(joiner, 0, 3, {"a", "b", "d"});
}

TEST(ElasticMembership, RestartWithAMissingMemberContinuesWithTheMajority) {
  RestartableCoordinator coordinator(3);
  auto members = start_in_first_epoch(coordinator->endpoint(), {"a", "b", "c"});

  coordinator->stop();
  members[2]->close();  // dies while the coordinator is down
  coordinator.restart();
  // After the recovery grace, two of three is a majority: epoch 2 without "c".
  for (size_t i : {0u, 1u}) expect_next_epoch(*members[i], 1, 2, {"a", "b"});
}

TEST(ElasticMembership, MalformedFramesAreRejectedAndServiceContinues) {
  Coordinator coordinator(fast_coordinator(1));
  coordinator.start();
  ::zmq::context_t context(1);
  ::zmq::socket_t raw(context, ::zmq::socket_type::dealer);
  raw.set(::zmq::sockopt::linger, 0);
  raw.set(::zmq::sockopt::rcvtimeo, 2000);
  raw.connect(coordinator.endpoint());

  const std::string garbage = "this is not a membership message";
  raw.send(::zmq::buffer(garbage), ::zmq::send_flags::none);
  raw.send(::zmq::message_t(), ::zmq::send_flags::none);  // empty frame
  auto heartbeat = encode_message(MessageType::kHeartbeat, job_hash("job"), 0, 1,
                                  encode_payload(MemberRef{"x", 1}));
  heartbeat[38] ^= 0x5A;  // corrupt the checksum
  raw.send(::zmq::buffer(heartbeat), ::zmq::send_flags::none);
  // Two frames in one message.
  raw.send(::zmq::buffer(garbage), ::zmq::send_flags::sndmore);
  raw.send(::zmq::buffer(garbage), ::zmq::send_flags::none);
  // A coordinator-to-member type sent to the coordinator.
  raw.send(::zmq::buffer(encode_message(MessageType::kEpoch, job_hash("job"), 0, 2,
                                        encode_payload(EpochPayload{}))),
           ::zmq::send_flags::none);
  // A register whose payload is cut short (header consistent with it).
  RegisterPayload registration;
  registration.job_id = "job";
  registration.member = MemberInfo{"x", "addr", "", {}};
  auto payload = encode_payload(registration);
  payload.resize(payload.size() - 3);
  raw.send(::zmq::buffer(encode_message(MessageType::kRegister, job_hash("job"), 0, 3, payload)),
           ::zmq::send_flags::none);
  // A well-formed message for another job: answered with kReject.
  registration.job_id = "other-job";
  raw.send(::zmq::buffer(encode_message(MessageType::kRegister, job_hash("other-job"), 0, 4,
                                        encode_payload(registration))),
           ::zmq::send_flags::none);

  EXPECT_TRUE(eventually([&] { return coordinator.snapshot().rejected_frames >= 7; }));
  int rejects = 0;
  ::zmq::message_t reply;
  while (raw.recv(reply, ::zmq::recv_flags::none)) {
    const Message message =
        decode_message({static_cast<const uint8_t*>(reply.data()), reply.size()}, std::nullopt);
    if (message.header.type == MessageType::kReject) ++rejects;
    if (rejects == 2) break;
  }
  EXPECT_EQ(rejects, 2);  // the short register and the other job

  // The coordinator still serves a well-behaved member.
  Member member(fast_member(coordinator.endpoint(), "good"));
  EXPECT_EQ(expect_epoch(member, 0).epoch, 1u);
  EXPECT_EQ(coordinator.snapshot().phase, CoordinatorPhase::kRunning);
}

TEST(ElasticMembership, MemberOfAnotherJobIsRefused) {
  Coordinator coordinator(fast_coordinator(1));
  coordinator.start();
  auto options = fast_member(coordinator.endpoint(), "stranger");
  options.job_id = "another-job";
  Member member(options);
  try {
    member.wait_for_epoch(0, kWait);
    ADD_FAILURE() << "expected a rejection";
  } catch (const ElasticError& error) {
    EXPECT_EQ(error.kind(), ElasticErrorKind::kRejected);
  }
}

}  // namespace
}  // namespace torchwan::elastic
