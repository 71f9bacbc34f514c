#include "elastic/member.h"

#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <random>
#include <zmq.hpp>

#include "elastic/errors.h"
#include "elastic/log.h"
#include "transport/secure/control_security.h"

namespace torchwan::elastic {
namespace {

using Clock = std::chrono::steady_clock;

// How long the member thread sleeps in poll: bounds the latency of queued requests.
constexpr auto kPollInterval = std::chrono::milliseconds(10);

// How long one TCP connect to the coordinator may take before a fresh one starts. Left to the
// kernel, a connect whose SYNs were dropped (a partition, the coordinator's host down) retries at
// doubling intervals (1, 3, 7, 15, 31 s), so a member cut off for a while would reach the
// healed network only at the next retry, up to a minute later. This leaves room for a lost SYN
// and its retransmission after 1 s plus a slow answer.
constexpr auto kConnectAttemptTimeout = std::chrono::milliseconds(2000);

[[noreturn]] void invalid_option(const std::string& what) {
  throw ElasticError(ElasticErrorKind::kInvalidArgument, "member options: " + what);
}

// "tcp://a:1, tcp://b:2" -> {"tcp://a:1", "tcp://b:2"}: the active coordinator and its standbys.
std::vector<std::string> split_endpoints(const std::string& list) {
  if (list.empty()) invalid_option("coordinator endpoint is empty");
  std::vector<std::string> endpoints;
  size_t start = 0;
  while (true) {
    const size_t comma = std::min(list.find(',', start), list.size());
    std::string entry = list.substr(start, comma - start);
    const size_t first = entry.find_first_not_of(" \t");
    const size_t last = entry.find_last_not_of(" \t");
    entry = first == std::string::npos ? "" : entry.substr(first, last - first + 1);
    if (entry.empty()) {
      invalid_option("coordinator list '" + list + "' has an empty entry");
    }
    if (std::find(endpoints.begin(), endpoints.end(), entry) != endpoints.end()) {
      invalid_option("coordinator list '" + list + "' names '" + entry + "' twice");
    }
    endpoints.push_back(std::move(entry));
    if (comma == list.size()) break;
    start = comma + 1;
  }
  return endpoints;
}

void validate(const MemberOptions& options) {
  auto fail = [](const std::string& what) { invalid_option(what); };
  if (options.job_id.empty() || options.job_id.size() > kMaxNameBytes) fail("bad job id");
  if (options.name.empty() || options.name.size() > kMaxNameBytes) fail("bad member name");
  if (options.address.size() > kMaxNameBytes) fail("address too long");
  if (options.region.size() > kMaxNameBytes) fail("region too long");
  if (options.heartbeat_interval.count() <= 0) fail("heartbeat interval must be positive");
  if (options.coordinator_timeout <= options.heartbeat_interval) {
    fail("coordinator timeout must exceed the heartbeat interval");
  }
}

// Distinguishes this process from an earlier one that used the same member name.
uint64_t random_incarnation() {
  std::random_device device;
  const uint64_t high = device();
  const uint64_t low = device();
  const auto now =
      static_cast<uint64_t>(std::chrono::steady_clock::now().time_since_epoch().count());
  return ((high << 32) | low) ^ now;
}

int rank_of(const std::vector<MemberInfo>& members, const std::string& name) {
  for (size_t i = 0; i < members.size(); ++i) {
    if (members[i].name == name) return static_cast<int>(i);
  }
  return -1;
}

}  // namespace

Member::Member(MemberOptions options)
    : options_(std::move(options)),
      log_(elastic_logger()),
      incarnation_(random_incarnation()),
      job_hash_(job_hash(options_.job_id)),
      endpoints_(split_endpoints(options_.coordinator)) {
  validate(options_);
  // Fail in the caller's thread, not silently in the member's.
  if (options_.secret) require_curve();
  thread_ = std::thread([this] { run(); });
}

Member::~Member() { leave(std::chrono::milliseconds(500)); }

void Member::set_epoch_callback(EpochCallback callback) {
  std::lock_guard<std::mutex> lock(mutex_);
  on_epoch_ = std::move(callback);
}

void Member::set_stop_callback(StopCallback callback) {
  std::lock_guard<std::mutex> lock(mutex_);
  on_stop_ = std::move(callback);
}

std::optional<EpochView> Member::current() const {
  std::lock_guard<std::mutex> lock(mutex_);
  return view_;
}

MemberState Member::state() const {
  std::lock_guard<std::mutex> lock(mutex_);
  return state_;
}

std::string Member::coordinator() const {
  std::lock_guard<std::mutex> lock(mutex_);
  return endpoints_[endpoint_index_];
}

uint32_t Member::num_waiting() const {
  std::lock_guard<std::mutex> lock(mutex_);
  return num_waiting_;
}

std::optional<EpochView> Member::wait_for_epoch(uint64_t newer_than,
                                                std::chrono::milliseconds timeout) {
  std::unique_lock<std::mutex> lock(mutex_);
  std::optional<EpochView> result;
  changed_.wait_for(lock, timeout, [&] {
    if (view_ && view_->epoch > newer_than && view_->rank >= 0) result = view_;
    return result.has_value() || state_ == MemberState::kStopped || closed_ ||
           !reject_reason_.empty() || !auth_error_.empty();
  });
  if (result) return result;
  if (!auth_error_.empty()) throw ElasticError(ElasticErrorKind::kAuthentication, auth_error_);
  if (state_ == MemberState::kStopped) {
    throw ElasticError(
        ElasticErrorKind::kStopped,
        "member '" + options_.name + "': the coordinator stopped the job: " + stop_reason_);
  }
  if (!reject_reason_.empty()) {
    throw ElasticError(ElasticErrorKind::kRejected,
                       "member '" + options_.name + "': registration refused: " + reject_reason_);
  }
  if (closed_) {
    throw ElasticError(ElasticErrorKind::kStopped, "member '" + options_.name + "' is closed");
  }
  return std::nullopt;
}

void Member::report_peer_lost(const std::string& peer, const std::string& reason) {
  queue(MessageType::kPeerLost,
        encode_payload(PeerLostPayload{{options_.name, incarnation_}, peer, reason}));
}

void Member::request_new_epoch() {
  queue(MessageType::kRequestEpoch, encode_payload(MemberRef{options_.name, incarnation_}));
}

void Member::queue(MessageType type, std::vector<uint8_t> payload) {
  std::lock_guard<std::mutex> lock(mutex_);
  requests_.push_back(Request{type, std::move(payload)});
}

void Member::leave(std::chrono::milliseconds timeout) {
  {
    std::unique_lock<std::mutex> lock(mutex_);
    if (!closed_ && registered_ && state_ != MemberState::kStopped) {
      leave_requested_ = true;
      requests_.push_back(
          Request{MessageType::kLeave, encode_payload(MemberRef{options_.name, incarnation_})});
      changed_.wait_for(lock, timeout, [&] { return left_ || closed_; });
    }
  }
  close();
}

void Member::close() {
  {
    std::lock_guard<std::mutex> lock(mutex_);
    stopping_ = true;
  }
  if (thread_.joinable()) thread_.join();
}

void Member::run() {
  ::zmq::context_t context(1);
  ::zmq::socket_t dealer(context, ::zmq::socket_type::dealer);
  const int interval_ms = static_cast<int>(options_.heartbeat_interval.count());
  dealer.set(::zmq::sockopt::linger, 0);
  // Queue nothing for a coordinator that is not connected: stale heartbeats are worthless, and
  // a fresh registration is sent once it answers again.
  dealer.set(::zmq::sockopt::immediate, 1);
  dealer.set(::zmq::sockopt::reconnect_ivl, std::min(100, interval_ms));
  dealer.set(::zmq::sockopt::reconnect_ivl_max, interval_ms);
  dealer.set(::zmq::sockopt::connect_timeout, static_cast<int>(kConnectAttemptTimeout.count()));
  dealer.set(::zmq::sockopt::maxmsgsize, static_cast<int64_t>(kHeaderBytes + kMaxPayloadBytes));
  // ZMTP heartbeats drop a connection whose other end vanished without a reset (host down,
  // NAT state lost), so that reconnection starts instead of writing into a dead socket.
  dealer.set(::zmq::sockopt::heartbeat_ivl, interval_ms);
  dealer.set(::zmq::sockopt::heartbeat_timeout,
             static_cast<int>(options_.coordinator_timeout.count()));
  if (options_.secret) make_curve_client(dealer, *options_.secret);
  // Watches the handshake: a refused one must become an error, not an endless silent retry.
  // Declared after the dealer so that it stops watching before the dealer closes.
  SocketMonitor monitor(context, dealer, "member");
  std::string endpoint = endpoints_.front();
  dealer.connect(endpoint);
  log_->info(
      "member '{}': connecting to {} for job '{}'{}", options_.name, endpoint, options_.job_id,
      options_.secret
          ? fmt::format(" with CURVE (secret fingerprint {})", options_.secret->fingerprint())
          : std::string(" without a job secret"));
  // When the TCP connection came up with no handshake result since: a CURVE client facing a
  // server that does not answer the handshake otherwise waits forever.
  bool handshaking = false;
  Clock::time_point handshake_started{};
  // Handshakes in a row that the coordinator's side closed without a reason. One can be a
  // coordinator going down at that moment; a wrong secret closes every attempt.
  int closed_handshakes = 0;
  auto watch_handshake = [&] {
    while (const auto event = monitor.next()) {
      log_->debug("member '{}': control socket event {:#x} (value {})", options_.name, event->event,
                  event->value);
      switch (event->event) {
        case ZMQ_EVENT_CONNECTED:
          handshaking = true;
          handshake_started = Clock::now();
          break;
        case ZMQ_EVENT_DISCONNECTED:
          handshaking = false;
          break;
        case ZMQ_EVENT_HANDSHAKE_SUCCEEDED: {
          handshaking = false;
          closed_handshakes = 0;
          std::lock_guard<std::mutex> lock(mutex_);
          auth_error_.clear();
          break;
        }
        case ZMQ_EVENT_HANDSHAKE_FAILED_AUTH:
        case ZMQ_EVENT_HANDSHAKE_FAILED_PROTOCOL:
        case ZMQ_EVENT_HANDSHAKE_FAILED_NO_DETAIL:
          handshaking = false;
          if (event->event == ZMQ_EVENT_HANDSHAKE_FAILED_NO_DETAIL) {
            // A CURVE coordinator facing a client without the secret (or with another one)
            // closes the connection; which side notices the mismatch first is a race, so the
            // client often sees only the close. Two in a row is a refusal, not bad luck.
            if (++closed_handshakes < 2) break;
            authentication_failed(fmt::format("the coordinator closed {} handshakes in a row: {}",
                                              closed_handshakes,
                                              describe_handshake_failure(*event)));
            break;
          }
          // Without a secret, only a mechanism mismatch proves that the coordinator wants one.
          if (options_.secret || (event->event == ZMQ_EVENT_HANDSHAKE_FAILED_PROTOCOL &&
                                  event->value == ZMQ_PROTOCOL_ERROR_ZMTP_MECHANISM_MISMATCH)) {
            authentication_failed(describe_handshake_failure(*event));
          }
          break;
        default:
          break;
      }
    }
    if (handshaking && Clock::now() - handshake_started > options_.coordinator_timeout) {
      handshaking = false;
      authentication_failed(fmt::format("no handshake completed within {} ms of connecting",
                                        options_.coordinator_timeout.count()));
    }
  };

  uint64_t sequence = 0;
  auto send = [&](MessageType type, const std::vector<uint8_t>& payload) {
    uint64_t epoch = 0;
    {
      std::lock_guard<std::mutex> lock(mutex_);
      if (view_) epoch = view_->epoch;
    }
    const auto frame = encode_message(type, job_hash_, epoch, ++sequence, payload);
    if (!dealer.send(::zmq::buffer(frame), ::zmq::send_flags::dontwait)) {
      log_->debug("member '{}': not connected; {} dropped", options_.name, message_type_name(type));
    }
  };
  auto registration = [&] {
    RegisterPayload request;
    request.job_id = options_.job_id;
    request.member =
        MemberInfo{options_.name, options_.address, options_.region, options_.capabilities};
    request.incarnation = incarnation_;
    std::lock_guard<std::mutex> lock(mutex_);
    if (view_) {
      request.last_epoch = view_->epoch;
      for (const auto& member : view_->members) request.last_members.push_back(member.name);
    }
    return encode_payload(request);
  };

  auto next_heartbeat = Clock::now();
  auto last_reply = Clock::now();
  // Leaves the current coordinator for the next in the list and registers there with our last
  // epoch and its members, exactly as after a coordinator restart.
  auto move_to_next_coordinator = [&](const std::string& why) {
    const std::string previous = endpoint;
    {
      std::lock_guard<std::mutex> lock(mutex_);
      endpoint_index_ = (endpoint_index_ + 1) % endpoints_.size();
      endpoint = endpoints_[endpoint_index_];
      registered_ = false;
      move_on_ = false;
    }
    log_->warn("member '{}': coordinator {} {}; moving to {}", options_.name, previous, why,
               endpoint);
    dealer.disconnect(previous);
    dealer.connect(endpoint);
    handshaking = false;
    closed_handshakes = 0;
    last_reply = Clock::now();
    next_heartbeat = last_reply;
  };
  std::vector<::zmq::pollitem_t> items = {{dealer.handle(), 0, ZMQ_POLLIN, 0},
                                          {monitor.socket().handle(), 0, ZMQ_POLLIN, 0}};
  while (true) {
    std::deque<Request> requests;
    bool registered = false;
    bool move_on = false;
    {
      std::lock_guard<std::mutex> lock(mutex_);
      if (stopping_) break;
      requests.swap(requests_);
      registered = registered_;
      move_on = move_on_;
    }
    const bool failover = endpoints_.size() > 1;
    if (move_on) {
      move_to_next_coordinator("stopped the job on its side");
      registered = false;
    } else if (failover && Clock::now() - last_reply > options_.coordinator_timeout) {
      // Silent (dead, or cut off from us): whether or not it ever answered, try the next one.
      move_to_next_coordinator(
          fmt::format("silent for {} ms", options_.coordinator_timeout.count()));
      registered = false;
    }
    for (const auto& request : requests) send(request.type, request.payload);

    const auto now = Clock::now();
    if (registered && now - last_reply > options_.coordinator_timeout) {
      log_->warn("member '{}': coordinator silent for {} ms; registering again", options_.name,
                 std::chrono::duration_cast<std::chrono::milliseconds>(now - last_reply).count());
      std::lock_guard<std::mutex> lock(mutex_);
      registered_ = registered = false;
      last_reply = now;
    }
    if (now >= next_heartbeat) {
      if (registered) {
        send(MessageType::kHeartbeat, encode_payload(MemberRef{options_.name, incarnation_}));
      } else {
        send(MessageType::kRegister, registration());
      }
      next_heartbeat = now + options_.heartbeat_interval;
    }

    ::zmq::poll(items, kPollInterval);
    watch_handshake();
    ::zmq::message_t frame;
    while (dealer.recv(frame, ::zmq::recv_flags::dontwait)) {
      try {
        const Message message =
            decode_message({static_cast<const uint8_t*>(frame.data()), frame.size()}, job_hash_);
        last_reply = Clock::now();
        handle(message);
        // The coordinator lost track of us (it restarted, or declared us failed): register now
        // rather than at the next heartbeat.
        if (message.header.type == MessageType::kUnknownMember) next_heartbeat = Clock::now();
      } catch (const WireError& error) {
        log_->warn("member '{}': rejected a frame from the coordinator: {}", options_.name,
                   error.what());
      }
    }
  }
  std::lock_guard<std::mutex> lock(mutex_);
  closed_ = true;
  changed_.notify_all();
}

void Member::authentication_failed(const std::string& detail) {
  std::string error;
  if (options_.secret) {
    error = fmt::format(
        "member '{}': cannot join the coordinator at {}: authentication failed or wrong secret "
        "({}; this member's secret has fingerprint {}): secret mismatch or coordinator without "
        "--secret-file",
        options_.name, coordinator(), detail, options_.secret->fingerprint());
  } else {
    error = fmt::format(
        "member '{}': cannot join the coordinator at {}: authentication failed ({}): the "
        "coordinator requires the job secret; give this member the job's secret file "
        "(TORCHWAN_SECRET_FILE or secret_file)",
        options_.name, coordinator(), detail);
  }
  std::lock_guard<std::mutex> lock(mutex_);
  // The socket keeps retrying; say it once per distinct failure, not at every retry.
  if (error != auth_error_) log_->error("{}", error);
  auth_error_ = std::move(error);
  changed_.notify_all();
}

bool Member::stop_is_final(const std::string& reason) {
  // Called with mutex_ held. A coordinator that lost quorum stops the job on its side only: the
  // majority may be running on a standby, which would readmit us. Only when every coordinator in
  // a row said stop (or the list has just one) is the job over for this member. Meanwhile we are
  // in no epoch: the old epoch's group is dead, since its majority left it.
  if (++stops_in_a_row_ >= endpoints_.size()) return true;
  log_->warn("member '{}': coordinator {} stopped the job ({}); trying the next coordinator",
             options_.name, endpoints_[endpoint_index_], reason);
  stop_reason_ = reason;
  registered_ = false;
  move_on_ = true;
  state_ = MemberState::kRecovering;
  return false;
}

void Member::handle(const Message& message) {
  std::unique_lock<std::mutex> lock(mutex_);
  // This coordinator serves the job: a later stop starts a fresh round of the list. A status
  // saying `recovering` does not count: that coordinator may yet decline (a standby that too few
  // members reached), and a member alone with a dead job must not cycle through the list forever.
  const MessageType type = message.header.type;
  if (type != MessageType::kStop && type != MessageType::kWelcome && type != MessageType::kStatus) {
    stops_in_a_row_ = 0;
  }
  switch (message.header.type) {
    case MessageType::kWelcome:
    case MessageType::kStatus: {
      const StatusPayload status = decode_payload<StatusPayload>(message.payload);
      if (message.header.type == MessageType::kWelcome) {
        registered_ = true;
        reject_reason_.clear();
        log_->info("member '{}': registered (coordinator epoch {})", options_.name, status.epoch);
      }
      num_waiting_ = status.num_waiting;
      if (status.state == MemberState::kActive || status.state == MemberState::kWaiting) {
        stops_in_a_row_ = 0;
      }
      if (status.state == MemberState::kWaiting && state_ == MemberState::kActive) {
        // We were removed (declared failed while we could not talk); we are a joiner now.
        log_->warn("member '{}': no longer part of epoch {}; waiting for readmission",
                   options_.name, status.epoch);
      }
      if (status.state != MemberState::kStopped) state_ = status.state;
      break;
    }
    case MessageType::kEpoch: {
      EpochPayload payload = decode_payload<EpochPayload>(message.payload);
      num_waiting_ = payload.num_waiting;
      if (view_ && payload.epoch < view_->epoch) break;  // stale
      if (view_ && payload.epoch == view_->epoch) {
        // A repeat (a resync, or a restarted coordinator resuming this epoch): nothing new to
        // announce, but it settles our state.
        state_ = view_->rank >= 0 ? MemberState::kActive : MemberState::kWaiting;
        break;
      }
      EpochView view;
      view.epoch = payload.epoch;
      view.rank = rank_of(payload.members, options_.name);
      view.members = std::move(payload.members);
      view.num_waiting = payload.num_waiting;
      view_ = view;
      state_ = view.rank >= 0 ? MemberState::kActive : MemberState::kWaiting;
      log_->info("member '{}': epoch {}, rank {} of {}", options_.name, view.epoch, view.rank,
                 view.world_size());
      changed_.notify_all();
      EpochCallback callback = on_epoch_;
      lock.unlock();
      if (callback && view.rank >= 0) callback(view);
      return;
    }
    case MessageType::kStop: {
      const ReasonPayload stop = decode_payload<ReasonPayload>(message.payload);
      if (state_ == MemberState::kStopped || move_on_) break;
      if (!stop_is_final(stop.reason)) break;
      state_ = MemberState::kStopped;
      stop_reason_ = stop.reason;
      stopping_ = true;  // nothing left to say to the coordinator
      log_->error("member '{}': coordinator stopped the job: {}", options_.name, stop.reason);
      changed_.notify_all();
      StopCallback callback = on_stop_;
      lock.unlock();
      if (callback) callback(stop.reason);
      return;
    }
    case MessageType::kReject: {
      const ReasonPayload reject = decode_payload<ReasonPayload>(message.payload);
      log_->warn("member '{}': coordinator refused a request: {}", options_.name, reject.reason);
      if (!registered_) reject_reason_ = reject.reason;
      break;
    }
    case MessageType::kUnknownMember:
      expect_empty(message.payload);
      if (registered_) {
        log_->warn("member '{}': coordinator does not know us; registering again", options_.name);
      }
      registered_ = false;
      // Already removed: there is nothing left to leave.
      if (leave_requested_) left_ = true;
      break;
    case MessageType::kGoodbye:
      expect_empty(message.payload);
      left_ = true;
      break;
    default:
      log_->warn("member '{}': unexpected {} message from the coordinator", options_.name,
                 message_type_name(message.header.type));
      break;
  }
  changed_.notify_all();
}

}  // namespace torchwan::elastic
