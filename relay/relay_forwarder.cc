#include "relay/relay_forwarder.h"

#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <chrono>
#include <deque>
#include <map>
#include <set>
#include <tuple>
#include <vector>

#include "relay/relay_wire.h"

namespace torchwan::relay {
namespace {

// Messages read per turn before the queues get a chance to drain (fairness, not a limit).
constexpr int kReadsPerTurn = 512;
// Routing ids of dropped clients, remembered so their later frames are discarded unread; the
// oldest is forgotten first, so a client cycling connections cannot grow this set.
constexpr size_t kRememberedBans = 4096;
// How often members with bytes in flight to them are checked for a closed connection. ZeroMQ's
// ROUTER says nothing when a peer disconnects; a send to it fails, so a probe finds out.
constexpr auto kProbeInterval = std::chrono::milliseconds(500);
using Clock = std::chrono::steady_clock;

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

class RelayForwarder::Impl {
 public:
  Impl(const RelayOptions& options, ::zmq::socket_t& router, std::shared_ptr<spdlog::logger> log,
       StatsSink publish_stats)
      : options_(options),
        log_(std::move(log)),
        router_(router),
        publish_stats_(std::move(publish_stats)),
        max_streams_(effective_max_streams(options_)) {}

  bool read_waiting() {
    int read = 0;
    while (read < kReadsPerTurn && read_one()) ++read;
    return read > 0;
  }

  void flush() {
    flush_queues();
    flush_credits();
    if (Clock::now() >= next_probe_) {
      probe_receivers();
      next_probe_ = Clock::now() + kProbeInterval;
    }
  }

  bool busy() const { return stats_.queued_bytes > 0 || !pending_credits_.empty(); }
  void count_handshake_failure() { ++stats_.handshake_failures; }

  RelayStats stats() const {
    RelayStats stats = stats_;
    stats.members = members_.size();
    stats.streams = streams_.size();
    return stats;
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
    publish_stats_(stats());
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

  const RelayOptions& options_;
  std::shared_ptr<spdlog::logger> log_;
  ::zmq::socket_t& router_;
  const StatsSink publish_stats_;
  const size_t max_streams_;
  RelayStats stats_;
  std::map<std::string, Client> clients_;       // by routing id
  std::map<std::string, std::string> members_;  // member key -> routing id
  std::map<StreamKey, Stream> streams_;
  std::set<StreamKey> pending_credits_;
  std::map<std::string, std::deque<Outgoing>> queues_;  // by destination routing id
  std::set<std::string> banned_;
  std::deque<std::string> ban_order_;
  Clock::time_point next_probe_ = Clock::now() + kProbeInterval;
};

RelayForwarder::RelayForwarder(const RelayOptions& options, ::zmq::socket_t& router,
                               std::shared_ptr<spdlog::logger> log, StatsSink publish_stats)
    : impl_(std::make_unique<Impl>(options, router, std::move(log), std::move(publish_stats))) {}
RelayForwarder::~RelayForwarder() = default;
bool RelayForwarder::read_waiting() { return impl_->read_waiting(); }
void RelayForwarder::flush() { impl_->flush(); }
bool RelayForwarder::busy() const { return impl_->busy(); }
void RelayForwarder::count_handshake_failure() { impl_->count_handshake_failure(); }
RelayStats RelayForwarder::stats() const { return impl_->stats(); }

}  // namespace torchwan::relay
