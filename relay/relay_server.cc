#include "relay/relay_server.h"

#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <chrono>
#include <deque>
#include <map>
#include <set>
#include <stdexcept>
#include <tuple>
#include <vector>

#include "base/log.h"
#include "relay/relay_wire.h"
#include "transport/secure/control_security.h"
#include "transport/secure/zap_handler.h"

namespace torchwan::relay {
namespace {

// How long the loop sleeps when nothing is queued; with bytes queued it only yields briefly.
constexpr auto kIdlePoll = std::chrono::milliseconds(20);
constexpr auto kBusyPoll = std::chrono::milliseconds(1);
// Messages read per loop turn before the queues get a chance to drain (fairness, not a limit).
constexpr int kReadsPerTurn = 512;
// Routing ids of dropped clients, remembered so their later frames are discarded unread; the
// oldest is forgotten first, so a client cycling connections cannot grow this set.
constexpr size_t kRememberedBans = 4096;
// How often members with bytes in flight to them are checked for a closed connection. ZeroMQ's
// ROUTER says nothing when a peer disconnects; a send to it fails, so a probe finds out.
constexpr auto kProbeInterval = std::chrono::milliseconds(500);
using Clock = std::chrono::steady_clock;
// Added to the largest frame for ZeroMQ's size limit (CURVE's MESSAGE command adds ~33 bytes).
constexpr size_t kFrameSlackBytes = 256;

int bound_port(::zmq::socket_t& socket) {
  const std::string endpoint = socket.get(::zmq::sockopt::last_endpoint);
  return std::stoi(endpoint.substr(endpoint.rfind(':') + 1));
}

// A member is known by job and member id, so that relays without a secret can serve several jobs
// without their member ids colliding.
std::string member_key(const std::string& job, const std::string& member) {
  return job + '\0' + member;
}

std::string printable(const std::string& routing_id) {
  std::string out;
  for (unsigned char c : routing_id) out += fmt::format("{:02x}", c);
  return out;
}

}  // namespace

void validate(const RelayOptions& options) {
  if (options.window_bytes == 0) throw std::invalid_argument("relay: --window-bytes must be > 0");
  if (options.max_chunk_bytes == 0) throw std::invalid_argument("relay: max chunk must be > 0");
  if (options.max_chunk_bytes > options.window_bytes) {
    throw std::invalid_argument(fmt::format(
        "relay: max chunk {} bytes exceeds the window of {} bytes: no chunk could ever be sent",
        options.max_chunk_bytes, options.window_bytes));
  }
  if (options.max_streams == 0) throw std::invalid_argument("relay: --max-streams must be > 0");
  if (options.max_memory_bytes < options.window_bytes) {
    throw std::invalid_argument(
        fmt::format("relay: --max-memory-mb ({} bytes) is below one window ({} bytes)",
                    options.max_memory_bytes, options.window_bytes));
  }
}

size_t effective_max_streams(const RelayOptions& options) {
  return static_cast<size_t>(
      std::min<uint64_t>(options.max_streams, options.max_memory_bytes / options.window_bytes));
}

// Everything the serving thread owns: the socket, the tables and the queues. Nothing here is
// shared with other threads except through RelayServer's published stats.
class RelayServer::Loop {
 public:
  Loop(RelayServer& server, ::zmq::socket_t& router)
      : server_(server),
        options_(server.options_),
        log_(server.log_),
        router_(router),
        max_streams_(effective_max_streams(options_)) {}

  void serve() {
    elastic::SocketMonitor monitor(server_.context_, router_,
                                   fmt::format("relay-{}", server_.port_));
    std::vector<::zmq::pollitem_t> items = {{router_.handle(), 0, ZMQ_POLLIN, 0},
                                            {monitor.socket().handle(), 0, ZMQ_POLLIN, 0}};
    auto next_probe = Clock::now() + kProbeInterval;
    while (!server_.stopping_) {
      const bool busy = stats_.queued_bytes > 0 || !pending_credits_.empty();
      ::zmq::poll(items, busy ? kBusyPoll : kIdlePoll);
      watch_handshakes(monitor);
      for (int i = 0; i < kReadsPerTurn && read_one(); ++i) {
      }
      flush_queues();
      flush_credits();
      if (Clock::now() >= next_probe) {
        probe_receivers();
        next_probe = Clock::now() + kProbeInterval;
      }
      publish();
    }
  }

 private:
  using StreamKey = std::tuple<std::string, std::string, uint32_t>;  // source, destination, lane

  struct Client {
    std::string job;
    std::string member;
    std::string key;
  };
  struct Stream {
    uint64_t in_flight = 0;       // bytes forwarded (or queued) that the receiver has not credited
    uint64_t credit_to_send = 0;  // credit from the receiver not yet passed on to the sender
  };
  struct Outgoing {
    ::zmq::message_t header;
    ::zmq::message_t payload;
  };

  void watch_handshakes(elastic::SocketMonitor& monitor) {
    while (const auto event = monitor.next()) {
      if (event->event == ZMQ_EVENT_HANDSHAKE_FAILED_AUTH ||
          event->event == ZMQ_EVENT_HANDSHAKE_FAILED_PROTOCOL ||
          event->event == ZMQ_EVENT_HANDSHAKE_FAILED_NO_DETAIL) {
        ++stats_.handshake_failures;
        log_->warn("relay: a connection to {} failed its handshake: {}{}", event->address,
                   elastic::describe_handshake_failure(*event),
                   options_.secret ? " (a client without this job's secret?)"
                                   : " (a client with a secret, while this relay has none?)");
      }
    }
  }

  // Reads one multipart message if one is waiting; false when none is.
  bool read_one() {
    ::zmq::message_t id;
    if (!router_.recv(id, ::zmq::recv_flags::dontwait)) return false;
    std::vector<::zmq::message_t> parts;
    bool more = id.more();
    while (more) {
      ::zmq::message_t part;
      (void)router_.recv(part, ::zmq::recv_flags::none);
      more = part.more();
      parts.push_back(std::move(part));
    }
    const std::string routing_id = id.to_string();
    if (banned_.count(routing_id) != 0) return true;  // a dropped client: discarded unread
    try {
      handle(routing_id, parts);
    } catch (const RelayWireError& error) {
      drop(routing_id, error.what());
    }
    return true;
  }

  void handle(const std::string& routing_id, std::vector<::zmq::message_t>& parts) {
    if (parts.empty()) return drop(routing_id, "an empty message");
    const Frame frame =
        decode_frame({static_cast<const uint8_t*>(parts[0].data()), parts[0].size()});
    const size_t expected_parts = frame.type == FrameType::kData ? 2 : 1;
    if (parts.size() != expected_parts) {
      return drop(routing_id,
                  fmt::format("{} in {} frames, expected {}", frame_type_name(frame.type),
                              parts.size(), expected_parts));
    }
    if (frame.type == FrameType::kRegister) return handle_register(routing_id, frame);
    const auto client = clients_.find(routing_id);
    if (client == clients_.end()) {
      return drop(routing_id, fmt::format("{} before REGISTER", frame_type_name(frame.type)));
    }
    switch (frame.type) {
      case FrameType::kData:
        return handle_data(client->second, routing_id, frame, std::move(parts[1]));
      case FrameType::kCredit:
        return handle_credit(client->second, routing_id, frame);
      default:
        return drop(routing_id, fmt::format("a {} frame, which only the relay sends",
                                            frame_type_name(frame.type)));
    }
  }

  void handle_register(const std::string& routing_id, const Frame& frame) {
    const std::string key = member_key(frame.job_id, frame.member);
    if (const auto self = clients_.find(routing_id); self != clients_.end()) {
      if (self->second.key == key) return send_frame(routing_id, registered());  // a repeat
      return drop(routing_id, fmt::format("registered as '{}', then again as '{}'",
                                          self->second.member, frame.member));
    }
    if (const auto holder = members_.find(key); holder != members_.end()) {
      if (!options_.secret) {
        // Without a secret nobody is authenticated: the first registration keeps the id.
        return drop(routing_id,
                    fmt::format("member '{}' of job '{}' is already registered from another "
                                "connection",
                                frame.member, frame.job_id));
      }
      // With a secret every client is a job member, so this is the member reconnecting (or a
      // member impersonating another, which the transports' end-to-end authentication catches).
      log_->warn(
          "relay: member '{}' of job '{}' registered again from a new connection; "
          "the old one is forgotten",
          frame.member, frame.job_id);
      forget(holder->second, "replaced by a new connection of the same member", false);
    }
    clients_[routing_id] = Client{frame.job_id, frame.member, key};
    members_[key] = routing_id;
    log_->info("relay: member '{}' of job '{}' registered", frame.member, frame.job_id);
    send_frame(routing_id, registered());
  }

  void handle_data(const Client& source, const std::string& routing_id, const Frame& frame,
                   ::zmq::message_t payload) {
    if (payload.size() != frame.bytes) {
      return drop(routing_id, fmt::format("DATA announces {} payload bytes but carries {}",
                                          frame.bytes, payload.size()));
    }
    if (payload.size() == 0 || payload.size() > options_.max_chunk_bytes) {
      return drop(routing_id, fmt::format("a DATA payload of {} bytes (allowed: 1 to {})",
                                          payload.size(), options_.max_chunk_bytes));
    }
    const std::string destination_key = member_key(source.job, frame.peer);
    const auto destination = members_.find(destination_key);
    if (destination == members_.end()) {
      return refuse_route(routing_id, frame.peer,
                          fmt::format("member '{}' is not registered at this relay", frame.peer));
    }
    const StreamKey key{source.key, destination_key, frame.lane};
    auto stream = streams_.find(key);
    if (stream == streams_.end()) {
      if (streams_.size() >= max_streams_) {
        return refuse_route(
            routing_id, frame.peer,
            fmt::format("the relay already carries its maximum of {} streams", max_streams_));
      }
      stream = streams_.emplace(key, Stream{}).first;
    }
    if (stream->second.in_flight + payload.size() > options_.window_bytes) {
      return drop(routing_id,
                  fmt::format("flooded its stream to '{}' lane {}: {} bytes in flight plus {} "
                              "exceed the window of {}",
                              frame.peer, frame.lane, stream->second.in_flight, payload.size(),
                              options_.window_bytes));
    }
    stream->second.in_flight += payload.size();
    stats_.in_flight_bytes += payload.size();
    stats_.peak_in_flight_bytes = std::max(stats_.peak_in_flight_bytes, stats_.in_flight_bytes);
    stats_.forwarded_bytes += payload.size();
    const auto header = encode_frame(data_frame(source.member, frame.lane, payload.size()));
    enqueue(destination->second,
            Outgoing{::zmq::message_t(header.data(), header.size()), std::move(payload)});
  }

  void handle_credit(const Client& receiver, const std::string& routing_id, const Frame& frame) {
    const StreamKey key{member_key(receiver.job, frame.peer), receiver.key, frame.lane};
    const auto stream = streams_.find(key);
    if (stream == streams_.end()) {
      // The sender was forgotten after these bytes left: nothing to pass on.
      log_->debug("relay: credit from '{}' for a stream from '{}' that no longer exists",
                  receiver.member, frame.peer);
      return;
    }
    if (frame.bytes > stream->second.in_flight) {
      return drop(routing_id,
                  fmt::format("credited {} bytes to '{}' lane {}, which has only {} "
                              "in flight",
                              frame.bytes, frame.peer, frame.lane, stream->second.in_flight));
    }
    stream->second.in_flight -= frame.bytes;
    stats_.in_flight_bytes -= frame.bytes;
    stream->second.credit_to_send += frame.bytes;
    pending_credits_.insert(key);
  }

  Frame registered() const {
    return registered_frame(options_.window_bytes, options_.max_chunk_bytes);
  }

  // Keeps per-destination order: once something waits for a destination, later bytes wait too.
  void enqueue(const std::string& routing_id, Outgoing outgoing) {
    auto& queue = queues_[routing_id];
    if (queue.empty()) {
      const int result = try_send(routing_id, outgoing);
      if (result == 0) return;
      if (result == EHOSTUNREACH) return unreachable(routing_id);
    }
    stats_.queued_bytes += outgoing.payload.size();
    stats_.peak_queued_bytes = std::max(stats_.peak_queued_bytes, stats_.queued_bytes);
    queue.push_back(std::move(outgoing));
  }

  // 0 when sent, EAGAIN when the destination's pipe is full, EHOSTUNREACH when it is gone.
  int try_send(const std::string& routing_id, Outgoing& outgoing) {
    try {
      if (!router_.send(::zmq::buffer(routing_id),
                        ::zmq::send_flags::sndmore | ::zmq::send_flags::dontwait)) {
        return EAGAIN;
      }
    } catch (const ::zmq::error_t& error) {
      if (error.num() == EHOSTUNREACH) return EHOSTUNREACH;
      throw;
    }
    // Once the routing id is accepted, ZeroMQ takes the remaining parts of the message whole.
    const bool has_payload = outgoing.payload.size() > 0;
    (void)router_.send(outgoing.header,
                       has_payload ? ::zmq::send_flags::sndmore : ::zmq::send_flags::none);
    if (has_payload) (void)router_.send(outgoing.payload, ::zmq::send_flags::none);
    return 0;
  }

  void flush_queues() {
    std::vector<std::string> gone;
    for (auto it = queues_.begin(); it != queues_.end();) {
      auto& queue = it->second;
      while (!queue.empty()) {
        const size_t bytes = queue.front().payload.size();
        const int result = try_send(it->first, queue.front());
        if (result == EAGAIN) break;
        if (result == EHOSTUNREACH) {
          gone.push_back(it->first);
          break;
        }
        stats_.queued_bytes -= bytes;
        queue.pop_front();
      }
      it = queue.empty() ? queues_.erase(it) : std::next(it);
    }
    for (const auto& routing_id : gone) unreachable(routing_id);
  }

  // Credits go to the sender as one frame per stream with everything credited since the last one,
  // so a receiver crediting byte by byte cannot make the relay queue frames.
  void flush_credits() {
    // Forgetting a sender edits pending_credits_, so that waits until the walk is over.
    std::vector<std::string> gone;
    for (auto it = pending_credits_.begin(); it != pending_credits_.end();) {
      const auto stream = streams_.find(*it);
      const auto sender = members_.find(std::get<0>(*it));
      const auto receiver = members_.find(std::get<1>(*it));
      if (stream == streams_.end() || sender == members_.end() || receiver == members_.end()) {
        it = pending_credits_.erase(it);
        continue;
      }
      const std::string& receiver_member = clients_.at(receiver->second).member;
      const auto header = encode_frame(
          credit_frame(receiver_member, std::get<2>(*it), stream->second.credit_to_send));
      Outgoing outgoing{::zmq::message_t(header.data(), header.size()), ::zmq::message_t()};
      const int result = try_send(sender->second, outgoing);
      if (result == EAGAIN) {
        ++it;
        continue;
      }
      stream->second.credit_to_send = 0;
      if (stream->second.in_flight == 0) streams_.erase(stream);  // idle: frees its slot
      it = pending_credits_.erase(it);
      if (result == EHOSTUNREACH) gone.push_back(sender->second);
    }
    for (const auto& routing_id : gone) unreachable(routing_id);
  }

  // Members that others wait on (streams with bytes in flight to them) get a repeat of
  // REGISTERED, which clients ignore; a member whose connection closed fails the send and is
  // forgotten, and its senders get NO_ROUTE instead of waiting for credit until their timeout.
  void probe_receivers() {
    std::set<std::string> receivers;
    for (const auto& [key, stream] : streams_) {
      if (stream.in_flight == 0) continue;
      const auto member = members_.find(std::get<1>(key));
      if (member != members_.end() && queues_.count(member->second) == 0) {
        receivers.insert(member->second);
      }
    }
    const auto probe = encode_frame(registered());
    for (const auto& routing_id : receivers) {
      Outgoing outgoing{::zmq::message_t(probe.data(), probe.size()), ::zmq::message_t()};
      if (try_send(routing_id, outgoing) == EHOSTUNREACH) unreachable(routing_id);
    }
  }

  void send_frame(const std::string& routing_id, const Frame& frame) {
    const auto header = encode_frame(frame);
    Outgoing outgoing{::zmq::message_t(header.data(), header.size()), ::zmq::message_t()};
    (void)try_send(routing_id, outgoing);  // best effort: control answers are never queued
  }

  void refuse_route(const std::string& routing_id, const std::string& peer,
                    const std::string& reason) {
    ++stats_.refused_streams;
    log_->info("relay: no route for '{}': {}", peer, reason);
    send_frame(routing_id, no_route_frame(peer, reason));
  }

  void unreachable(std::string routing_id) { forget(routing_id, "its connection is gone", false); }

  // Malformed or hostile input: the client is told why, forgotten, and its later frames discarded.
  void drop(const std::string& routing_id, const std::string& reason) {
    ++stats_.dropped_clients;
    const auto client = clients_.find(routing_id);
    log_->warn("relay: dropping client {}{}: {}", printable(routing_id),
               client != clients_.end() ? fmt::format(" (member '{}')", client->second.member)
                                        : std::string(),
               reason);
    send_frame(routing_id, refused_frame(reason));
    forget(routing_id, reason, true);
  }

  // Removes a client with its streams and queue; senders of streams to it get NO_ROUTE, so that
  // nobody waits for credit that cannot come.
  // Takes the routing id by value: callers often pass a table entry that this erases.
  void forget(std::string routing_id, const std::string& reason, bool ban) {
    if (ban) {
      banned_.insert(routing_id);
      ban_order_.push_back(routing_id);
      if (ban_order_.size() > kRememberedBans) {
        banned_.erase(ban_order_.front());
        ban_order_.pop_front();
      }
    }
    if (const auto queue = queues_.find(routing_id); queue != queues_.end()) {
      for (const auto& outgoing : queue->second) stats_.queued_bytes -= outgoing.payload.size();
      queues_.erase(queue);
    }
    const auto client = clients_.find(routing_id);
    if (client == clients_.end()) return;
    const Client gone = client->second;
    clients_.erase(client);
    if (const auto member = members_.find(gone.key);
        member != members_.end() && member->second == routing_id) {
      members_.erase(member);
    }
    std::set<std::string> senders_to_tell;
    for (auto it = streams_.begin(); it != streams_.end();) {
      const auto& [source, destination, lane] = it->first;
      if (source != gone.key && destination != gone.key) {
        ++it;
        continue;
      }
      if (destination == gone.key && it->second.in_flight > 0) {
        if (const auto sender = members_.find(source); sender != members_.end()) {
          senders_to_tell.insert(sender->second);
        }
      }
      stats_.in_flight_bytes -= it->second.in_flight;
      pending_credits_.erase(it->first);
      it = streams_.erase(it);
    }
    for (const auto& sender : senders_to_tell) {
      send_frame(sender, no_route_frame(gone.member,
                                        "member '" + gone.member + "' left the relay: " + reason));
    }
  }

  void publish() {
    stats_.members = members_.size();
    stats_.streams = streams_.size();
    std::lock_guard<std::mutex> lock(server_.stats_mutex_);
    server_.stats_ = stats_;
  }

  RelayServer& server_;
  const RelayOptions& options_;
  std::shared_ptr<spdlog::logger> log_;
  ::zmq::socket_t& router_;
  const size_t max_streams_;
  RelayStats stats_;
  std::map<std::string, Client> clients_;       // by routing id
  std::map<std::string, std::string> members_;  // member key -> routing id
  std::map<StreamKey, Stream> streams_;
  std::set<StreamKey> pending_credits_;
  std::map<std::string, std::deque<Outgoing>> queues_;  // by destination routing id
  std::set<std::string> banned_;
  std::deque<std::string> ban_order_;
};

RelayServer::RelayServer(RelayOptions options)
    : options_(std::move(options)), log_(layer_logger("relay")), context_(1) {
  validate(options_);
}

RelayServer::~RelayServer() {
  stop();
  zap_.reset();
}

void RelayServer::start() {
  if (running()) return;
  ::zmq::socket_t router(context_, ::zmq::socket_type::router);
  router.set(::zmq::sockopt::linger, 0);
  // Sends to a vanished member fail (EHOSTUNREACH) instead of being dropped silently, and a full
  // destination says EAGAIN, so the relay queues instead of losing bytes.
  router.set(::zmq::sockopt::router_mandatory, 1);
  // ZeroMQ closes a connection that sends a frame above this before the relay allocates for it.
  // Under CURVE the limit applies to the encrypted frame, which is larger than the payload by the
  // box's overhead: the slack keeps a full chunk legal.
  router.set(::zmq::sockopt::maxmsgsize,
             static_cast<int64_t>(std::max<size_t>(kMaxHeaderBytes, options_.max_chunk_bytes) +
                                  kFrameSlackBytes));
  // Message counts, not bytes: the windows bound the bytes; these keep ZeroMQ's own pipes short
  // so that bytes wait in the relay's queue, where they are counted.
  router.set(::zmq::sockopt::sndhwm, 64);
  router.set(::zmq::sockopt::rcvhwm, 64);
  // Closes connections whose other end vanished without a reset (NAT state lost, host down).
  router.set(::zmq::sockopt::heartbeat_ivl, 5000);
  router.set(::zmq::sockopt::heartbeat_timeout, 15000);
  if (options_.secret) {
    if (!zap_) {
      zap_ =
          std::make_unique<elastic::ZapHandler>(context_, options_.secret->curve_keys().public_key);
    }
    elastic::make_curve_server(router, *options_.secret);
    router.set(::zmq::sockopt::zap_domain, "torchwan-relay");
  }
  const std::string port = options_.port == 0 ? "*" : std::to_string(options_.port);
  router.bind("tcp://" + options_.host + ":" + port);
  port_ = bound_port(router);
  stopping_ = false;
  log_->info("relay: listening on {}:{}, window {} bytes, at most {} streams", options_.host, port_,
             options_.window_bytes, effective_max_streams(options_));
  if (options_.secret) {
    log_->info("relay: CURVE authentication on; members need the job secret (fingerprint {})",
               options_.secret->fingerprint());
  } else {
    log_->warn("relay: no secret: anyone who reaches port {} may register and forward bytes",
               port_);
  }
  thread_ = std::thread([this, socket = std::move(router)]() mutable {
    Loop loop(*this, socket);
    try {
      loop.serve();
    } catch (const std::exception& error) {
      log_->error("relay: serving loop failed: {}", error.what());
    }
  });
}

void RelayServer::stop() {
  if (!running()) return;
  stopping_ = true;
  thread_.join();
  log_->info("relay: stopped serving port {}", port_);
}

std::string RelayServer::endpoint() const {
  const std::string host =
      options_.host == "0.0.0.0" || options_.host == "*" ? "127.0.0.1" : options_.host;
  return "tcp://" + host + ":" + std::to_string(port_);
}

RelayStats RelayServer::stats() const {
  std::lock_guard<std::mutex> lock(stats_mutex_);
  return stats_;
}

}  // namespace torchwan::relay
