// A job member's link to the coordinator: registers, heartbeats, follows membership epochs and
// reports lost peers. One background thread owns the DEALER socket (ZeroMQ sockets are not
// thread-safe); the public methods only queue requests and read the latest state, so any thread
// may call them.
#pragma once

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "elastic/membership_wire.h"
#include "transport/secure/job_secret.h"

namespace spdlog {
class logger;
}

namespace torchwan::elastic {

struct MemberOptions {
  // "tcp://host:port", or a comma-separated list of them: the active coordinator and its standbys.
  // The member talks to one at a time and moves to the next (round-robin) when the current one
  // stays silent for coordinator_timeout or stops the job; see docs/elastic.md, Coordinator
  // failover.
  std::string coordinator;
  std::string job_id;
  std::string name;     // unique within the job; a restarted process may reuse it
  std::string address;  // data-plane address published to the other members
  std::string region;
  std::vector<std::string> capabilities;
  std::chrono::milliseconds heartbeat_interval{1000};
  // No answer from the coordinator for this long: treat the connection as dead (ZMTP heartbeats
  // close it) and register afresh once it answers again.
  std::chrono::milliseconds coordinator_timeout{10000};
  // The job secret: the connection becomes a CURVE client that only a coordinator holding the
  // same secret accepts (and that only accepts such a coordinator). A member with a secret never
  // talks to a coordinator without one: that is refused as an authentication failure.
  std::optional<security::JobSecret> secret;
};

// One membership epoch as this member sees it.
struct EpochView {
  uint64_t epoch = 0;
  std::vector<MemberInfo> members;  // rank order
  int rank = -1;                    // this member's index in `members`; -1 when not included
  uint32_t num_waiting = 0;         // joiners waiting for the next step boundary
  int world_size() const { return static_cast<int>(members.size()); }
};

class Member {
 public:
  using EpochCallback = std::function<void(const EpochView&)>;
  using StopCallback = std::function<void(const std::string& reason)>;

  // Starts the background thread, which connects and registers (retrying until the coordinator
  // answers). Throws ElasticError(kInvalidArgument) for unusable options.
  explicit Member(MemberOptions options);
  // Leaves the job (briefly waiting for the coordinator's acknowledgement) unless already closed.
  ~Member();
  Member(const Member&) = delete;
  Member& operator=(const Member&) = delete;

  // Called on the member thread for every new epoch that includes this member, and once when the
  // coordinator stops the job (possibly just after wait_for_epoch returned). Keep them short:
  // heartbeats wait while they run.
  void set_epoch_callback(EpochCallback callback);
  void set_stop_callback(StopCallback callback);

  // The newest epoch received (it may not include this member: rank == -1).
  std::optional<EpochView> current() const;
  MemberState state() const;
  uint32_t num_waiting() const;
  const std::string& name() const { return options_.name; }
  // The coordinator this member talks to now (one of the list's endpoints).
  std::string coordinator() const;
  uint64_t incarnation() const { return incarnation_; }

  // Waits for an epoch numbered above `newer_than` that includes this member. Returns nothing on
  // timeout; throws ElasticError(kStopped) when the job was stopped (with several coordinators:
  // by as many `stop` answers in a row as there are coordinators) or this member closed,
  // ElasticError(kRejected) when the coordinator refused the registration, and
  // ElasticError(kAuthentication) when the connection fails its security handshake (a wrong or
  // missing secret on either side) or, with a secret, connects but completes no handshake within
  // coordinator_timeout.
  std::optional<EpochView> wait_for_epoch(uint64_t newer_than, std::chrono::milliseconds timeout);

  // The data plane saw `peer` fail (connection reset, op timeout). Lets the coordinator remove
  // it in well under its heartbeat timeout; see docs/elastic.md for the confirmation rule.
  void report_peer_lost(const std::string& peer, const std::string& reason);
  // The members reached a step boundary: the coordinator admits waiting joiners now (a new
  // epoch), or re-sends the current epoch when nobody is waiting.
  void request_new_epoch();
  // Tells the coordinator this member is leaving, waits up to `timeout` for its answer, then
  // stops the thread. Idempotent.
  void leave(std::chrono::milliseconds timeout = std::chrono::milliseconds(2000));
  // Stops the thread without telling anyone, as a crash would. Idempotent.
  void close();

 private:
  struct Request {
    MessageType type;
    std::vector<uint8_t> payload;
  };

  void run();
  void handle(const Message& message);
  void queue(MessageType type, std::vector<uint8_t> payload);
  void authentication_failed(const std::string& detail);
  // A coordinator told us to stop. With standbys left to try, this only closes that coordinator
  // (returns false); the job is over once every coordinator in a row has said so (returns true).
  bool stop_is_final(const std::string& reason);

  MemberOptions options_;
  std::shared_ptr<spdlog::logger> log_;
  const uint64_t incarnation_;
  const uint64_t job_hash_;
  const std::vector<std::string> endpoints_;  // options_.coordinator split at commas

  mutable std::mutex mutex_;
  std::condition_variable changed_;
  std::deque<Request> requests_;
  std::optional<EpochView> view_;
  MemberState state_ = MemberState::kWaiting;
  uint32_t num_waiting_ = 0;
  bool registered_ = false;
  bool leave_requested_ = false;
  bool left_ = false;      // the coordinator acknowledged our leave, or no longer knows us
  bool stopping_ = false;  // the thread must exit
  bool closed_ = false;    // the thread has exited or been asked to
  std::string stop_reason_;
  size_t endpoint_index_ = 0;  // endpoints_[endpoint_index_] is the coordinator we talk to
  // Coordinators in a row that answered `stop`; reset by any other answer.
  size_t stops_in_a_row_ = 0;
  bool move_on_ = false;  // set by a non-final stop: the member thread moves to the next endpoint
  std::string reject_reason_;
  std::string auth_error_;  // set by a failed handshake, cleared by a successful one
  EpochCallback on_epoch_;
  StopCallback on_stop_;

  std::thread thread_;
};

}  // namespace torchwan::elastic
