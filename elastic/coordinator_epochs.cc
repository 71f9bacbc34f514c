// The coordinator's epoch decisions: forming the first epoch, changing membership under the
// quorum rule, detecting failures, and rebuilding the history after a restart.
#include <spdlog/spdlog.h>

#include <algorithm>
#include <tuple>

#include "elastic/coordinator_core.h"

namespace torchwan::elastic {
namespace {

std::string join_names(const std::vector<std::string>& names) {
  std::string text;
  for (const auto& name : names) text += (text.empty() ? "" : ", ") + name;
  return text;
}

long long ms_between(Clock::time_point from, Clock::time_point to) {
  return std::chrono::duration_cast<std::chrono::milliseconds>(to - from).count();
}

}  // namespace

void CoordinatorCore::sort_cohort(std::vector<Tracked>& cohort) {
  // Newcomers get ranks by (region, name): deterministic whatever order their registrations
  // arrived in, and members of one region sit next to each other, which is what rings and
  // hierarchical algorithms want.
  std::sort(cohort.begin(), cohort.end(), [](const Tracked& a, const Tracked& b) {
    return std::tie(a.info.region, a.info.name) < std::tie(b.info.region, b.info.name);
  });
}

void CoordinatorCore::tick(Clock::time_point now) {
  if (phase_ == CoordinatorPhase::kStopped) return;
  // A joiner that went silent is dropped quietly: it was never part of an epoch.
  std::erase_if(waiting_, [&](const Tracked& joiner) {
    const bool silent = now - joiner.last_seen > options_.heartbeat_timeout;
    if (silent) log_->info("coordinator: dropping silent joiner '{}'", joiner.info.name);
    return silent;
  });
  if (phase_ == CoordinatorPhase::kRecovering && now >= recovery_->deadline) {
    resolve_recovery(now);
  }
  if (phase_ == CoordinatorPhase::kRunning) check_member_liveness(now);
}

void CoordinatorCore::check_member_liveness(Clock::time_point now) {
  std::vector<Removal> removals;
  for (auto& member : members_) {
    std::erase_if(member.lost_reports, [&](const auto& report) {
      return now - report.second > options_.heartbeat_timeout;
    });
    const auto silent = now - member.last_seen;
    const long long silent_ms = ms_between(member.last_seen, now);
    if (silent > options_.heartbeat_timeout) {
      removals.push_back(
          {member.info.name, "no heartbeat for " + std::to_string(silent_ms) + " ms"});
    } else if (member.lost_reports.size() >= 2) {
      removals.push_back(
          {member.info.name,
           "reported lost by " + std::to_string(member.lost_reports.size()) + " members"});
    } else if (!member.lost_reports.empty() && silent >= options_.peer_lost_silence) {
      removals.push_back(
          {member.info.name, "reported lost by '" + member.lost_reports.begin()->first +
                                 "' and silent for " + std::to_string(silent_ms) + " ms"});
    }
  }
  if (!removals.empty()) change_membership(removals, false);
}

void CoordinatorCore::change_membership(const std::vector<Removal>& removals, bool admit_waiting) {
  size_t leaving = 0;
  size_t failing = 0;
  std::vector<std::string> failed_names;
  std::vector<Tracked> survivors;
  for (auto& member : members_) {
    auto removal = std::find_if(removals.begin(), removals.end(),
                                [&](const Removal& r) { return r.name == member.info.name; });
    if (removal == removals.end()) {
      survivors.push_back(member);
      continue;
    }
    log_->warn("coordinator: removing '{}' from epoch {}: {}", member.info.name, epoch_,
               removal->reason);
    if (removal->voluntary) {
      ++leaving;
    } else {
      ++failing;
      failed_names.push_back(member.info.name);
    }
  }
  // Quorum: failures must leave a strict majority of the members that did not leave on purpose.
  // If most of the group went silent at once, the likelier story is that the coordinator is the
  // one cut off; continuing with the few it still hears would fork the job.
  const size_t base = members_.size() - leaving;
  for (const auto& removal : removals) {
    if (removal.voluntary) std::erase(confirmed_, removal.name);
  }
  if (options_.require_majority && failing > 0 && 2 * survivors.size() <= base) {
    members_ = std::move(survivors);
    stop_job("quorum lost in epoch " + std::to_string(epoch_) + ": " + std::to_string(failing) +
             " of " + std::to_string(base) + " members failed (" + join_names(failed_names) + ")");
    return;
  }
  const size_t confirmed_survivors =
      std::count_if(confirmed_.begin(), confirmed_.end(), [&](const std::string& name) {
        return std::any_of(survivors.begin(), survivors.end(),
                           [&](const Tracked& t) { return t.info.name == name; });
      });
  if (options_.require_majority && failing > 0 && !confirmed_.empty() &&
      2 * confirmed_survivors <= confirmed_.size()) {
    members_ = std::move(survivors);
    stop_job("quorum lost in epoch " + std::to_string(epoch_) + ": only " +
             std::to_string(confirmed_survivors) + " of the " + std::to_string(confirmed_.size()) +
             " members of the last epoch all members confirmed survive (" +
             join_names(failed_names) + " failed)");
    return;
  }
  if (admit_waiting) {
    // Existing members keep their ranks; joiners are appended after them.
    sort_cohort(waiting_);
    for (auto& joiner : waiting_) survivors.push_back(std::move(joiner));
    waiting_.clear();
  }
  if (survivors.empty()) {
    members_.clear();
    phase_ = CoordinatorPhase::kForming;
    log_->warn("coordinator: no members left after epoch {}; forming anew", epoch_);
    form_if_ready();
    return;
  }
  publish_epoch(std::move(survivors));
}

void CoordinatorCore::note_held_epoch(Tracked& member, uint64_t epoch) {
  member.held_epoch = epoch;
  if (phase_ != CoordinatorPhase::kRunning || epoch != epoch_) return;
  const bool all_hold = std::all_of(members_.begin(), members_.end(),
                                    [&](const Tracked& t) { return t.held_epoch == epoch_; });
  if (!all_hold) return;
  std::vector<std::string> names;
  for (const auto& t : members_) names.push_back(t.info.name);
  confirmed_ = std::move(names);
}

void CoordinatorCore::form_if_ready() {
  if (phase_ != CoordinatorPhase::kForming || waiting_.size() < options_.min_members) return;
  // A standby forming a job from fresh registrations could start a second job beside the active
  // coordinator's, which is still running and would never know.
  if (options_.standby && !served_) return;
  std::vector<Tracked> members = std::move(waiting_);
  waiting_.clear();
  sort_cohort(members);
  publish_epoch(std::move(members));
}

void CoordinatorCore::publish_epoch(std::vector<Tracked> members) {
  epoch_ = ++highest_epoch_;
  members_ = std::move(members);
  phase_ = CoordinatorPhase::kRunning;
  served_ = true;
  std::vector<std::string> names;
  for (auto& member : members_) {
    member.lost_reports.clear();
    names.push_back(member.info.name);
  }
  log_->info("coordinator: epoch {} with {} member(s): {} ({} waiting)", epoch_, members_.size(),
             join_names(names), waiting_.size());
  for (const auto& member : members_) send_epoch(member);
}

void CoordinatorCore::finish_recovery_if_complete() {
  if (phase_ != CoordinatorPhase::kRecovering) return;
  const auto& expected = recovery_->members;
  const bool complete = std::all_of(expected.begin(), expected.end(), [&](const std::string& name) {
    return find_waiting(name) != nullptr;
  });
  if (!complete) return;
  if (expected.empty()) {
    recovery_.reset();
    phase_ = CoordinatorPhase::kForming;
    form_if_ready();
    return;
  }
  // Everyone of the newest epoch is back: resume it under its own number. The member list is
  // exactly the one that number already names, so this is not a reuse, and the job continues
  // without regrouping.
  std::vector<Tracked> members;
  for (const auto& name : expected) {
    auto it = std::find_if(waiting_.begin(), waiting_.end(),
                           [&](const Tracked& t) { return t.info.name == name; });
    members.push_back(std::move(*it));
    waiting_.erase(it);
  }
  epoch_ = recovery_->epoch;
  members_ = std::move(members);
  confirmed_ = recovery_->members;
  phase_ = CoordinatorPhase::kRunning;
  served_ = true;
  log_->warn("coordinator: resumed epoch {} with all {} member(s) after restart", epoch_,
             members_.size());
  recovery_.reset();
  for (const auto& member : members_) send_epoch(member);
}

void CoordinatorCore::resolve_recovery(Clock::time_point /*now*/) {
  const Recovery recovery = *recovery_;
  recovery_.reset();
  std::vector<Tracked> present;
  for (const auto& name : recovery.members) {
    auto it = std::find_if(waiting_.begin(), waiting_.end(),
                           [&](const Tracked& t) { return t.info.name == name; });
    if (it == waiting_.end()) continue;
    present.push_back(std::move(*it));
    waiting_.erase(it);
  }
  const size_t total = recovery.members.size();
  if (options_.standby && !served_ && 2 * present.size() <= total) {
    // The active coordinator may well be running the job with the others: stay out of it.
    members_ = std::move(present);
    decline_takeover("standby coordinator: only " + std::to_string(members_.size()) + " of " +
                     std::to_string(total) + " members of epoch " + std::to_string(recovery.epoch) +
                     " came over; not taking the job over");
    return;
  }
  if (options_.require_majority && 2 * present.size() <= total) {
    members_ = std::move(present);
    stop_job("quorum lost across coordinator restart: only " + std::to_string(members_.size()) +
             " of " + std::to_string(total) + " members of epoch " +
             std::to_string(recovery.epoch) + " re-registered");
    return;
  }
  if (present.empty()) {
    phase_ = CoordinatorPhase::kForming;
    form_if_ready();
    return;
  }
  log_->warn("coordinator: {} of {} members of epoch {} re-registered; continuing without the rest",
             present.size(), total, recovery.epoch);
  // The epoch they all held is the last one known to have reached everyone.
  confirmed_ = recovery.members;
  publish_epoch(std::move(present));
}

void CoordinatorCore::decline_takeover(const std::string& reason) {
  log_->warn("coordinator: {}", reason);
  const auto payload = encode_payload(ReasonPayload{reason});
  for (const auto& member : members_) send(member.routing_id, MessageType::kStop, payload);
  for (const auto& joiner : waiting_) send(joiner.routing_id, MessageType::kStop, payload);
  members_.clear();
  waiting_.clear();
  confirmed_.clear();
  epoch_ = 0;
  // Nothing was issued here, so the next takeover attempt may rebuild from the same epoch.
  highest_epoch_ = 0;
  phase_ = CoordinatorPhase::kForming;
}

void CoordinatorCore::stop_job(const std::string& reason) {
  phase_ = CoordinatorPhase::kStopped;
  stop_reason_ = reason;
  log_->error("coordinator: stopping job '{}': {}", job_id_, reason);
  const auto payload = encode_payload(ReasonPayload{reason});
  for (const auto& member : members_) send(member.routing_id, MessageType::kStop, payload);
  for (const auto& joiner : waiting_) send(joiner.routing_id, MessageType::kStop, payload);
}

}  // namespace torchwan::elastic
