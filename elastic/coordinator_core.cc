// Message handling of the coordinator: decode, identify the sender, apply one request. The epoch
// decisions these requests lead to live in coordinator_epochs.cc.
#include "elastic/coordinator_core.h"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <iterator>

#include "base/enum_names.h"
#include "elastic/errors.h"
#include "elastic/log.h"

namespace torchwan::elastic {
namespace {

// Routing ids are binary; logs show them as hex.
std::string printable_id(const std::string& routing_id) {
  static constexpr char kDigits[] = "0123456789abcdef";
  std::string text;
  for (const char c : routing_id) {
    text += kDigits[(static_cast<uint8_t>(c) >> 4) & 0xF];
    text += kDigits[static_cast<uint8_t>(c) & 0xF];
  }
  return text;
}

}  // namespace

const char* coordinator_phase_name(CoordinatorPhase phase) {
  static constexpr const char* kNames[] = {"forming", "recovering", "running", "stopped"};
  static_assert(std::size(kNames) == static_cast<size_t>(CoordinatorPhase::kStopped) + 1);
  return base::enum_name(phase, kNames, "invalid");
}

CoordinatorCore::CoordinatorCore(CoordinatorOptions options, Clock::time_point /*now*/)
    : options_(std::move(options)), log_(elastic_logger()), job_id_(options_.job_id) {
  if (!job_id_.empty()) job_hash_ = job_hash(job_id_);
  if (options_.min_members == 0) options_.min_members = 1;
}

void CoordinatorCore::handle(const std::string& routing_id, std::span<const uint8_t> frame,
                             Clock::time_point now) {
  Message message;
  try {
    message = decode_message(frame, job_hash_);
  } catch (const WireError& error) {
    ++rejected_frames_;
    log_->warn("coordinator: rejected frame of {} bytes from peer {}: {}", frame.size(),
               printable_id(routing_id), error.what());
    // A well-formed message for another job deserves an answer, so that a misconfigured member
    // fails fast instead of waiting; garbage gets none.
    if (error.kind() == WireErrorKind::kWrongJob) {
      reject(routing_id, error.what(), decode_message(frame, std::nullopt).header.job);
    } else if (error.kind() == WireErrorKind::kBadVersion) {
      // Our own magic with another version: a member of an older or newer torchwan. It may not
      // parse our answer, but its own decoder then logs the version it got, which says as much.
      reject(routing_id, error.what(), peek_job_hash(frame));
    }
    return;
  }
  if (!is_member_to_coordinator(message.header.type)) {
    ++rejected_frames_;
    log_->warn("coordinator: rejected {} message from peer {}: only members' requests are accepted",
               message_type_name(message.header.type), printable_id(routing_id));
    return;
  }
  if (phase_ == CoordinatorPhase::kStopped) {
    // The job is over; whatever a member asks, the answer is the same.
    send(routing_id, MessageType::kStop, encode_payload(ReasonPayload{stop_reason_}));
    return;
  }
  try {
    switch (message.header.type) {
      case MessageType::kRegister:
        on_register(routing_id, message, now);
        break;
      case MessageType::kHeartbeat:
        on_heartbeat(routing_id, message, now);
        break;
      case MessageType::kLeave:
        on_leave(routing_id, message, now);
        break;
      case MessageType::kPeerLost:
        on_peer_lost(routing_id, message, now);
        break;
      case MessageType::kRequestEpoch:
        on_request_epoch(routing_id, message, now);
        break;
      default:
        break;
    }
  } catch (const WireError& error) {
    ++rejected_frames_;
    log_->warn("coordinator: rejected {} message from peer {}: {}",
               message_type_name(message.header.type), printable_id(routing_id), error.what());
    reject(routing_id, error.what());
  }
}

void CoordinatorCore::reject_frame(const std::string& routing_id, const std::string& reason) {
  ++rejected_frames_;
  log_->warn("coordinator: rejected message from peer {}: {}", printable_id(routing_id), reason);
}

void CoordinatorCore::on_register(const std::string& routing_id, const Message& message,
                                  Clock::time_point now) {
  RegisterPayload request = decode_payload<RegisterPayload>(message.payload);
  if (job_hash(request.job_id) != message.header.job) {
    throw WireError(WireErrorKind::kMalformedPayload,
                    "job id '" + request.job_id + "' does not match the header's job hash");
  }
  if (!job_hash_) {
    // The first registration decides which job this coordinator serves.
    job_id_ = request.job_id;
    job_hash_ = message.header.job;
    log_->info("coordinator: serving job '{}'", job_id_);
  }
  const std::string name = request.member.name;
  Tracked joiner;
  joiner.info = std::move(request.member);
  joiner.incarnation = request.incarnation;
  joiner.routing_id = routing_id;
  joiner.last_seen = now;
  joiner.last_epoch = request.last_epoch;
  joiner.last_members = std::move(request.last_members);

  if (Tracked* member = find_member(name)) {
    if (member->incarnation == joiner.incarnation) {
      // The same process reconnected (new TCP connection, hence a new routing id).
      member->routing_id = routing_id;
      member->last_seen = now;
      member->info = joiner.info;
      send_status(routing_id, MessageType::kWelcome, MemberState::kActive);
      send_epoch(*member);
      return;
    }
    // Same name, new process: the old one is gone. Remove it now rather than after a timeout,
    // and let the new process queue as a joiner.
    log_->warn("coordinator: member '{}' re-registered as a new process; removing the old one",
               name);
    change_membership({Removal{name, "restarted as a new process", false}}, false);
    if (phase_ == CoordinatorPhase::kStopped) {
      send(routing_id, MessageType::kStop, encode_payload(ReasonPayload{stop_reason_}));
      return;
    }
  }
  if (Tracked* waiting = find_waiting(name)) {
    *waiting = std::move(joiner);
  } else {
    log_->info("coordinator: '{}' ({}, region '{}') registered, last epoch {}", name,
               joiner.info.address, joiner.info.region, joiner.last_epoch);
    waiting_.push_back(std::move(joiner));
  }
  const Tracked& registered = *find_waiting(name);

  if (registered.last_epoch > highest_epoch_) {
    highest_epoch_ = registered.last_epoch;
    if (phase_ == CoordinatorPhase::kForming) {
      // A member of an earlier history: this coordinator restarted. Rebuild before forming.
      phase_ = CoordinatorPhase::kRecovering;
      recovery_ =
          Recovery{registered.last_epoch, registered.last_members, now + options_.recovery_grace};
      log_->warn("coordinator: '{}' reports epoch {}; recovering that epoch's {} members", name,
                 registered.last_epoch, registered.last_members.size());
    } else if (phase_ == CoordinatorPhase::kRecovering) {
      recovery_->epoch = registered.last_epoch;
      recovery_->members = registered.last_members;
    } else if (phase_ == CoordinatorPhase::kRunning) {
      // Someone holds an epoch number above ours: issue a fresh one so that no number ever names
      // two different member lists.
      log_->warn("coordinator: '{}' reports epoch {} above the current {}; re-publishing", name,
                 registered.last_epoch, epoch_);
      change_membership({}, false);
    }
  }
  send_status(routing_id, MessageType::kWelcome, state_of(name));
  if (phase_ == CoordinatorPhase::kForming) form_if_ready();
  if (phase_ == CoordinatorPhase::kRecovering) finish_recovery_if_complete();
}

void CoordinatorCore::on_heartbeat(const std::string& routing_id, const Message& message,
                                   Clock::time_point now) {
  const MemberRef ref = decode_payload<MemberRef>(message.payload);
  Tracked* tracked = find_known(routing_id, ref, now);
  if (tracked == nullptr) return;
  note_held_epoch(*tracked, message.header.epoch);
  const MemberState state = state_of(ref.name);
  send_status(routing_id, MessageType::kStatus, state);
  // The member missed an epoch (its queue overflowed, or it reconnected): send it again.
  if (state == MemberState::kActive && message.header.epoch != epoch_) send_epoch(*tracked);
}

void CoordinatorCore::on_leave(const std::string& routing_id, const Message& message,
                               Clock::time_point now) {
  const MemberRef ref = decode_payload<MemberRef>(message.payload);
  if (find_known(routing_id, ref, now) == nullptr) return;
  send(routing_id, MessageType::kGoodbye, {});
  if (find_waiting(ref.name) != nullptr) {
    std::erase_if(waiting_, [&](const Tracked& t) { return t.info.name == ref.name; });
    log_->info("coordinator: joiner '{}' left before admission", ref.name);
    return;
  }
  log_->info("coordinator: member '{}' left", ref.name);
  if (phase_ == CoordinatorPhase::kRunning) {
    change_membership({Removal{ref.name, "left", true}}, false);
  } else {
    std::erase_if(members_, [&](const Tracked& t) { return t.info.name == ref.name; });
  }
}

void CoordinatorCore::on_peer_lost(const std::string& routing_id, const Message& message,
                                   Clock::time_point now) {
  const PeerLostPayload report = decode_payload<PeerLostPayload>(message.payload);
  if (find_known(routing_id, report.reporter, now) == nullptr) return;
  if (find_member(report.reporter.name) == nullptr) {
    reject(routing_id, "only members of the current epoch may report a lost peer");
    return;
  }
  Tracked* peer = find_member(report.peer);
  if (peer == nullptr || report.peer == report.reporter.name) {
    log_->info("coordinator: '{}' reported '{}' lost, which is not another current member",
               report.reporter.name, report.peer);
    return;
  }
  log_->info("coordinator: '{}' reports '{}' lost ({}); silent for {} ms", report.reporter.name,
             report.peer, report.reason,
             std::chrono::duration_cast<std::chrono::milliseconds>(now - peer->last_seen).count());
  peer->lost_reports[report.reporter.name] = now;
  check_member_liveness(now);
}

void CoordinatorCore::on_request_epoch(const std::string& routing_id, const Message& message,
                                       Clock::time_point now) {
  const MemberRef ref = decode_payload<MemberRef>(message.payload);
  if (find_known(routing_id, ref, now) == nullptr) return;
  Tracked* member = find_member(ref.name);
  if (member == nullptr || phase_ != CoordinatorPhase::kRunning) {
    send_status(routing_id, MessageType::kStatus, state_of(ref.name));
    return;
  }
  if (waiting_.empty()) {
    // Nothing to change: the current epoch stands; tell the requester so it stops waiting.
    send_epoch(*member);
    return;
  }
  log_->info("coordinator: '{}' reached a step boundary; admitting {} joiner(s)", ref.name,
             waiting_.size());
  change_membership({}, true);
}

CoordinatorCore::Tracked* CoordinatorCore::find_known(const std::string& routing_id,
                                                      const MemberRef& ref, Clock::time_point now) {
  Tracked* tracked = find_member(ref.name);
  if (tracked == nullptr) tracked = find_waiting(ref.name);
  if (tracked == nullptr || tracked->incarnation != ref.incarnation) {
    if (phase_ == CoordinatorPhase::kStopped) {
      send(routing_id, MessageType::kStop, encode_payload(ReasonPayload{stop_reason_}));
    } else {
      // Typically: this coordinator restarted, or declared the sender failed. It must register.
      send(routing_id, MessageType::kUnknownMember, {});
    }
    return nullptr;
  }
  tracked->routing_id = routing_id;
  tracked->last_seen = now;
  return tracked;
}

CoordinatorCore::Tracked* CoordinatorCore::find_member(const std::string& name) {
  auto it = std::find_if(members_.begin(), members_.end(),
                         [&](const Tracked& t) { return t.info.name == name; });
  return it == members_.end() ? nullptr : &*it;
}

CoordinatorCore::Tracked* CoordinatorCore::find_waiting(const std::string& name) {
  auto it = std::find_if(waiting_.begin(), waiting_.end(),
                         [&](const Tracked& t) { return t.info.name == name; });
  return it == waiting_.end() ? nullptr : &*it;
}

MemberState CoordinatorCore::state_of(const std::string& name) const {
  if (phase_ == CoordinatorPhase::kStopped) return MemberState::kStopped;
  if (phase_ == CoordinatorPhase::kRecovering) return MemberState::kRecovering;
  const bool active = std::any_of(members_.begin(), members_.end(),
                                  [&](const Tracked& t) { return t.info.name == name; });
  return active ? MemberState::kActive : MemberState::kWaiting;
}

void CoordinatorCore::send(const std::string& routing_id, MessageType type,
                           std::span<const uint8_t> payload) {
  outgoing_.push_back(Outgoing{
      routing_id, encode_message(type, job_hash_.value_or(0), epoch_, ++sequence_, payload)});
}

void CoordinatorCore::send_status(const std::string& routing_id, MessageType type,
                                  MemberState state) {
  send(routing_id, type, encode_payload(StatusPayload{state, epoch_, num_waiting()}));
}

void CoordinatorCore::send_epoch(const Tracked& to) {
  EpochPayload payload;
  payload.epoch = epoch_;
  payload.num_waiting = num_waiting();
  for (const auto& member : members_) payload.members.push_back(member.info);
  send(to.routing_id, MessageType::kEpoch, encode_payload(payload));
}

void CoordinatorCore::reject(const std::string& routing_id, const std::string& reason,
                             std::optional<uint64_t> job) {
  const auto payload = encode_payload(ReasonPayload{reason});
  outgoing_.push_back(
      Outgoing{routing_id, encode_message(MessageType::kReject, job.value_or(job_hash_.value_or(0)),
                                          epoch_, ++sequence_, payload)});
}

std::vector<Outgoing> CoordinatorCore::take_outgoing() { return std::exchange(outgoing_, {}); }

CoordinatorSnapshot CoordinatorCore::snapshot() const {
  CoordinatorSnapshot snapshot;
  snapshot.phase = phase_;
  snapshot.epoch = epoch_;
  for (const auto& member : members_) snapshot.members.push_back(member.info);
  for (const auto& joiner : waiting_) snapshot.waiting.push_back(joiner.info.name);
  snapshot.rejected_frames = rejected_frames_;
  return snapshot;
}

}  // namespace torchwan::elastic
