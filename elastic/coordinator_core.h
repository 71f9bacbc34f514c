// The coordinator's decisions, without sockets or threads: frames go in with the time they
// arrived, frames to send come out. Keeping this pure makes the membership rules (epochs, quorum,
// failure confirmation, recovery after a restart) testable with a fake clock, and leaves
// Coordinator with nothing but the ZeroMQ loop.
#pragma once

#include <chrono>
#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "elastic/coordinator_options.h"
#include "elastic/membership_wire.h"

namespace spdlog {
class logger;
}

namespace torchwan::elastic {

using Clock = std::chrono::steady_clock;

enum class CoordinatorPhase {
  kForming,     // no epoch yet: waiting for min_members registrations
  kRecovering,  // restarted: collecting re-registrations to rebuild the last epoch
  kRunning,     // an epoch is in force
  kStopped,     // quorum was lost; every member is told to stop
};
const char* coordinator_phase_name(CoordinatorPhase phase);

// A frame for the ROUTER socket: the peer's routing id and the message.
struct Outgoing {
  std::string routing_id;
  std::vector<uint8_t> frame;
};

// A consistent copy of the coordinator's state, for tests, tools and logs.
struct CoordinatorSnapshot {
  CoordinatorPhase phase = CoordinatorPhase::kForming;
  uint64_t epoch = 0;
  std::vector<MemberInfo> members;   // rank order
  std::vector<std::string> waiting;  // joiners in arrival order
  uint64_t rejected_frames = 0;
};

class CoordinatorCore {
 public:
  CoordinatorCore(CoordinatorOptions options, Clock::time_point now);

  // One frame from the peer with ROUTER routing id `routing_id`. Malformed or foreign frames are
  // logged, counted and answered with kReject when the sender is identifiable; never thrown.
  void handle(const std::string& routing_id, std::span<const uint8_t> frame, Clock::time_point now);
  // Time-driven decisions: heartbeat timeouts, confirmation of reported losses, end of recovery.
  void tick(Clock::time_point now);
  // Counts and logs a frame the socket layer refused before decoding (e.g. wrong frame count).
  void reject_frame(const std::string& routing_id, const std::string& reason);
  // Frames produced since the last call, in order.
  std::vector<Outgoing> take_outgoing();

  CoordinatorSnapshot snapshot() const;

 private:
  struct Tracked {
    MemberInfo info;
    uint64_t incarnation = 0;
    std::string routing_id;
    Clock::time_point last_seen;
    // Re-registration after a coordinator restart: what this member last held.
    uint64_t last_epoch = 0;
    std::vector<std::string> last_members;
    // The newest epoch this member said it holds (its heartbeats' header).
    uint64_t held_epoch = 0;
    // Members that reported this one lost, and when.
    std::map<std::string, Clock::time_point> lost_reports;
  };
  // What a restarted coordinator rebuilds: the newest epoch any member reports, and its members.
  struct Recovery {
    uint64_t epoch = 0;
    std::vector<std::string> members;
    Clock::time_point deadline;
  };
  struct Removal {
    std::string name;
    std::string reason;
    bool voluntary = false;
  };

  void on_register(const std::string& routing_id, const Message& message, Clock::time_point now);
  void on_heartbeat(const std::string& routing_id, const Message& message, Clock::time_point now);
  void on_leave(const std::string& routing_id, const Message& message, Clock::time_point now);
  void on_peer_lost(const std::string& routing_id, const Message& message, Clock::time_point now);
  void on_request_epoch(const std::string& routing_id, const Message& message,
                        Clock::time_point now);

  // Applies removals and optional admission of all waiting joiners as one new epoch, subject to
  // the quorum rule; stops the job when the rule fails.
  void change_membership(const std::vector<Removal>& removals, bool admit_waiting);
  void form_if_ready();
  void finish_recovery_if_complete();
  void resolve_recovery(Clock::time_point now);
  void publish_epoch(std::vector<Tracked> members);
  // Called when a member says which epoch it holds: records it, and confirms the epoch once all
  // of its members hold it.
  void note_held_epoch(Tracked& member, uint64_t epoch);
  static void sort_cohort(std::vector<Tracked>& cohort);
  void stop_job(const std::string& reason);
  // A standby that never served: too few of the job came over. Tells them to move on (`stop`, which
  // a member with other coordinators to try takes as "not here") and forgets them, staying ready.
  void decline_takeover(const std::string& reason);
  void check_member_liveness(Clock::time_point now);

  // Finds a member of the current epoch (or a joiner) by name and incarnation; refreshes its
  // routing id and liveness. Answers kUnknownMember and returns null when there is no match.
  Tracked* find_known(const std::string& routing_id, const MemberRef& ref, Clock::time_point now);
  Tracked* find_member(const std::string& name);
  Tracked* find_waiting(const std::string& name);

  void send(const std::string& routing_id, MessageType type, std::span<const uint8_t> payload);
  void send_status(const std::string& routing_id, MessageType type, MemberState state);
  void send_epoch(const Tracked& to);
  // `job` defaults to ours; a sender of another job is answered in its own job's terms, or it
  // would discard the answer as foreign.
  void reject(const std::string& routing_id, const std::string& reason,
              std::optional<uint64_t> job = std::nullopt);
  MemberState state_of(const std::string& name) const;
  uint32_t num_waiting() const { return static_cast<uint32_t>(waiting_.size()); }

  CoordinatorOptions options_;
  std::shared_ptr<spdlog::logger> log_;
  // Empty until the first registration when options_.job_id is empty.
  std::string job_id_;
  std::optional<uint64_t> job_hash_;

  CoordinatorPhase phase_ = CoordinatorPhase::kForming;
  uint64_t epoch_ = 0;          // epoch in force (0: none)
  uint64_t highest_epoch_ = 0;  // highest epoch number issued or reported; the next is above it
  std::vector<Tracked> members_;
  std::vector<Tracked> waiting_;
  std::optional<Recovery> recovery_;
  // The members of the newest epoch every one of whose members said it holds it: the last
  // membership known to have reached all of them. Failures must also leave a strict majority of
  // it, or joiners admitted into an epoch that the rest never received (cut off just before)
  // could outvote them. Voluntary leavers are taken out. Empty: none confirmed yet.
  std::vector<std::string> confirmed_;
  // An epoch was published or resumed here. Until then a standby forms nothing on its own.
  bool served_ = false;
  std::string stop_reason_;

  uint64_t sequence_ = 0;
  uint64_t rejected_frames_ = 0;
  std::vector<Outgoing> outgoing_;
};

}  // namespace torchwan::elastic
