// What arrives: messages on the ROUTERs, goodbye acks on the DEALERs, and monitor events.
#include <arpa/inet.h>
#include <fmt/format.h>
#include <netinet/in.h>
#include <sys/socket.h>

#include "transport/zmq/zmq_engine.h"
#include "transport/zmq/zmq_sockets.h"
#include "transport/zmq/zmq_wire.h"

namespace torchwan::transport::zmq_detail {

namespace {

// Bounds the work one poll does on one ROUTER, so a busy lane cannot starve the others.
constexpr int kMessagesPerRouterPoll = 256;

bool is_power_of_two(uint64_t value) { return (value & (value - 1)) == 0; }

}  // namespace

void Engine::drain_router(int lane) {
  ::zmq::socket_t& router = receive_lanes_[static_cast<size_t>(lane)].router.socket();
  for (int count = 0; count < kMessagesPerRouterPoll && router; ++count) {
    ::zmq::message_t routing;
    if (!router.recv(routing, ::zmq::recv_flags::dontwait)) return;
    // A ZMQ message arrives whole: its remaining frames are already here. Keep two, count all.
    std::vector<::zmq::message_t> parts;
    size_t frames = 0;
    bool more = routing.more();
    while (more) {
      ::zmq::message_t part;
      if (!router.recv(part, ::zmq::recv_flags::dontwait)) break;
      more = part.more();
      ++frames;
      if (parts.size() < 2) parts.push_back(std::move(part));
    }
    handle_message(lane, routing, parts, frames);
  }
}

void Engine::handle_message(int lane, const ::zmq::message_t& routing,
                            std::vector<::zmq::message_t>& parts, size_t frames) {
  const auto owner = decode_routing_id(routing.data(), routing.size());
  if (!owner || owner->rank >= size_ || owner->rank == rank_ || owner->lane != lane) {
    note_stranger(lane, "its routing id is not that of a rank of this group on this lane");
    return;
  }
  if (carriers_[static_cast<size_t>(owner->rank)] == Carrier::kOurDealer) {
    // The pair is reverse with this rank as the dialer: that rank cannot have connected here.
    note_stranger(lane, "it claims a rank whose lanes this rank dialed itself");
    return;
  }
  if (carriers_[static_cast<size_t>(owner->rank)] == Carrier::kRelay) {
    note_stranger(lane, "it claims a rank whose lanes come through the relay");
    return;
  }
  handle_frames(Arrival{owner->rank, lane, &routing}, parts, frames);
}

void Engine::handle_frames(const Arrival& arrival, std::vector<::zmq::message_t>& parts,
                           size_t frames) {
  const int peer = arrival.peer;
  const int lane = arrival.lane;
  if (lost_[static_cast<size_t>(peer)]) return;  // stale: this peer is gone for good
  const bool greeted = hello_seen_[static_cast<size_t>(peer * options_.lanes + lane)] != 0;
  // Before its hello passed, a connection to our ROUTER is anyone's: with a secret, what it sends
  // cannot speak for the rank it claims to be, so only that connection goes. On our own DEALER we
  // dialed the address the peer published: whatever answers there speaks for it.
  auto reject = [&](const std::string& why) {
    if (greeted || !auth_.enabled() || arrival.routing == nullptr) {
      lose_peer(peer, ErrorKind::kProtocol, why);
    } else {
      refuse_connection(peer, lane, parts.empty() ? *arrival.routing : parts[0], why);
    }
  };
  if (frames != 2) {
    reject("it sent a " + std::to_string(frames) + "-frame message on lane " +
           std::to_string(lane) + ", expected 2 frames");
    return;
  }
  Header header;
  try {
    header = decode_header(parts[0].data(), parts[0].size(), parts[1].size());
  } catch (const core::WireError& malformed) {
    reject("it sent a " + std::string(malformed.what()) + " on lane " + std::to_string(lane));
    return;
  }
  if (header.job != auth_.job_hash() || header.epoch != auth_.epoch()) {
    reject(
        fmt::format("it sent a message of job {:#x} epoch {} on lane {}, this group is job "
                    "{:#x} epoch {} (replayed or stale traffic?)",
                    header.job, header.epoch, lane, auth_.job_hash(), auth_.epoch()));
    return;
  }
  if (!greeted && header.type != MessageType::kControl) {
    reject("it sent data on lane " + std::to_string(lane) + " before its hello");
    return;
  }
  switch (header.type) {
    case MessageType::kControl:
      handle_control(arrival, parts[0], parts[1], greeted);
      return;
    case MessageType::kData: {
      if (leaving_ || shut_down_) return;  // every receive failed already; do not hoard data
      const core::PieceHeader piece{header.tag, header.index, header.total_length, header.offset,
                                    header.length};
      const std::string why =
          inbound_.deliver(peer, piece, core::HeldBytes::hold(std::move(parts[1])));
      if (!why.empty()) lose_peer(peer, ErrorKind::kProtocol, "it broke the protocol: " + why);
      return;
    }
    case MessageType::kCancel:
      inbound_.sender_canceled(peer, header.tag, header.index);
      return;
  }
}

void Engine::handle_control(const Arrival& arrival, const ::zmq::message_t& header_frame,
                            const ::zmq::message_t& body, bool greeted) {
  const int peer = arrival.peer;
  const int lane = arrival.lane;
  auto reject = [&](const std::string& why) {
    if (greeted || !auth_.enabled() || arrival.routing == nullptr) {
      lose_peer(peer, ErrorKind::kProtocol, why);
    } else {
      refuse_connection(peer, lane, header_frame, why);
    }
  };
  core::ControlMessage message;
  try {
    message = core::decode_control(body.data(), body.size());
  } catch (const core::WireError& malformed) {
    reject("its " + std::string(malformed.what()) + " on lane " + std::to_string(lane) +
           " was rejected");
    return;
  }
  if (!greeted) {
    const auto* hello = std::get_if<core::Hello>(&message);
    if (hello != nullptr) {
      handle_hello(arrival, header_frame, *hello);
      return;
    }
    reject("it sent " + core::describe(message) + " on lane " + std::to_string(lane) +
           " before its hello");
    return;
  }
  // On a reverse link our goodbye travels on the same connection as the peer's data, and so
  // does its acknowledgement.
  if (std::holds_alternative<core::GoodbyeAck>(message) &&
      carriers_[static_cast<size_t>(peer)] != Carrier::kSplit) {
    send_lane(peer, lane).bye_acked = true;
    return;
  }
  const core::ControlVerdict verdict = departures_.on_control(peer, lane, message);
  switch (verdict.kind) {
    case core::ControlVerdict::Kind::kAlive:
      return;
    case core::ControlVerdict::Kind::kLost:
      lose_peer(peer, verdict.error, verdict.cause);
      return;
    case core::ControlVerdict::Kind::kLaneLeft:
      acknowledge_goodbye(arrival);
      return;
    case core::ControlVerdict::Kind::kDeparted:
      acknowledge_goodbye(arrival);
      lose_peer(peer, ErrorKind::kPeerLost, verdict.cause, /*departed=*/true);
      return;
  }
}

void Engine::acknowledge_goodbye(const Arrival& arrival) {
  // Everything the peer sent on this lane arrived before its goodbye; acknowledge, so it may
  // close its connections.
  OutgoingFrame ack = control_frame(core::GoodbyeAck{});
  if (carriers_[static_cast<size_t>(arrival.peer)] == Carrier::kRelay) {
    // Through the relay, behind what this rank still sends there (the window decides when).
    send_lane(arrival.peer, arrival.lane).queue.push_back(std::move(ack));
    return;
  }
  ack.header.job = auth_.job_hash();
  ack.header.epoch = auth_.epoch();
  const auto ack_bytes = encode_header(ack.header);
  ::zmq::socket_t& socket = arrival.routing != nullptr
                                ? receive_lanes_[static_cast<size_t>(arrival.lane)].router.socket()
                                : send_lane(arrival.peer, arrival.lane).dealer.socket();
  try {
    const auto flags = ::zmq::send_flags::sndmore | ::zmq::send_flags::dontwait;
    if ((arrival.routing == nullptr ||
         socket.send(::zmq::buffer(arrival.routing->data(), arrival.routing->size()), flags)) &&
        socket.send(::zmq::buffer(ack_bytes), flags)) {
      (void)socket.send(std::move(*ack.payload), ::zmq::send_flags::dontwait);
    }
  } catch (const ::zmq::error_t& error) {
    log_->debug("{}: cannot acknowledge rank {}'s goodbye on lane {}: {}", who(), arrival.peer,
                arrival.lane, error.what());
  }
}

void Engine::drain_dealer(SendLane& link) {
  if (link.carrier == Carrier::kOurDealer) {
    for (int count = 0; count < kMessagesPerRouterPoll && link.dealer; ++count) {
      std::vector<::zmq::message_t> parts(1);
      if (!link.dealer.socket().recv(parts[0], ::zmq::recv_flags::dontwait)) return;
      size_t frames = 1;
      bool more = parts[0].more();
      while (more) {
        ::zmq::message_t part;
        if (!link.dealer.socket().recv(part, ::zmq::recv_flags::dontwait)) break;
        more = part.more();
        ++frames;
        if (parts.size() < 2) parts.push_back(std::move(part));
      }
      handle_frames(Arrival{link.peer, link.lane, nullptr}, parts, frames);
    }
    return;
  }
  while (link.dealer) {
    std::vector<::zmq::message_t> frames(1);
    if (!link.dealer.socket().recv(frames[0], ::zmq::recv_flags::dontwait)) return;
    while (frames.back().more()) {
      ::zmq::message_t rest;
      if (!link.dealer.socket().recv(rest, ::zmq::recv_flags::dontwait)) break;
      frames.push_back(std::move(rest));
    }
    // Anything but an acknowledgement of this job and epoch is ignored: the link closes anyway.
    if (frames.size() != 2) continue;
    try {
      const Header header = decode_header(frames[0].data(), frames[0].size(), frames[1].size());
      if (header.type == MessageType::kControl && header.job == auth_.job_hash() &&
          header.epoch == auth_.epoch() &&
          std::holds_alternative<core::GoodbyeAck>(
              core::decode_control(frames[1].data(), frames[1].size()))) {
        link.bye_acked = true;
      }
    } catch (const core::WireError& malformed) {
      log_->debug("{}: ignoring what rank {} sent back on lane {}: {}", who(), link.peer, link.lane,
                  malformed.what());
    }
  }
}

void Engine::handle_hello(const Arrival& arrival, const ::zmq::message_t& header_frame,
                          const core::Hello& hello) {
  const int peer = arrival.peer;
  const int lane = arrival.lane;
  if (!auth_.verify(peer, lane, hello.proof)) {
    const std::string why =
        "its hello does not prove the job secret for this job and epoch (wrong job secret, or "
        "not a member of this group)";
    if (arrival.routing == nullptr) {
      // We dialed the address the peer published and something else answered.
      lose_peer(peer, ErrorKind::kProtocol,
                "what answered at " + send_lane(peer, lane).endpoint + " failed: " + why);
      return;
    }
    // Only a holder of the secret can tell this rank anything, so a failed proof fails nothing
    // but this connection; the auth records already named a rank with another secret.
    refuse_connection(peer, lane, header_frame, why);
    return;
  }
  const std::string why =
      core::check_hello(hello, peer, lane, core::expected_hello(options_, size_));
  if (!why.empty()) {
    lose_peer(peer, ErrorKind::kProtocol,
              "its hello on lane " + std::to_string(lane) + " was rejected: " + why);
    return;
  }
  hello_seen_[static_cast<size_t>(peer * options_.lanes + lane)] = 1;
  refusals_[static_cast<size_t>(peer * options_.lanes + lane)].clear();
  --hellos_missing_;
  // ZMQ_SRCFD is deprecated but the only link between a message and the connection that the
  // monitor's disconnect event names.
  if (arrival.routing == nullptr) return;  // our DEALER's own monitor reports its disconnect
  const int fd = zmq_msg_get(const_cast<zmq_msg_t*>(header_frame.handle()), ZMQ_SRCFD);
  if (fd < 0) return;
  // The descriptor may be a reused one: the dial phase's probes (and any stranger) connect and
  // close. ZMQ queues a connection's disconnect event before it closes the descriptor, so
  // reading the events queued so far first keeps a stale one from being taken for this peer's.
  drain_router_monitor(lane);
  if (lost_[static_cast<size_t>(peer)]) return;
  receive_lanes_[static_cast<size_t>(lane)].peer_by_fd[fd] = peer;
}

void Engine::refuse_connection(int peer, int lane, const ::zmq::message_t& frame,
                               const std::string& why) {
  // Metadata the connection's engine attached; absent on a frame ZMQ made up itself.
  const char* peer_address_text =
      zmq_msg_gets(const_cast<zmq_msg_t*>(frame.handle()), "Peer-Address");
  const std::string address = peer_address_text != nullptr ? peer_address_text : "";
  const std::string text =
      fmt::format("a connection from {} claiming to be rank {} lane {} was refused: {}",
                  address.empty() ? "an unknown address" : address, peer, lane, why);
  log_->warn("{}: {}", who(), text);
  refusals_[static_cast<size_t>(peer * options_.lanes + lane)] = text;
  // A ROUTER cannot close one connection, so shut its descriptor down under ZMQ, which then
  // drops the connection and frees the routing id it took for the rank it claimed. The
  // descriptor could have been closed and reused since the message arrived: shut it down only
  // while it still leads to the address that sent the message.
  const int fd = zmq_msg_get(const_cast<zmq_msg_t*>(frame.handle()), ZMQ_SRCFD);
  if (fd < 0 || address.empty()) return;
  sockaddr_storage peer_address{};
  socklen_t length = sizeof(peer_address);
  if (getpeername(fd, reinterpret_cast<sockaddr*>(&peer_address), &length) != 0) return;
  char host[INET6_ADDRSTRLEN] = {};
  const void* raw = peer_address.ss_family == AF_INET6
                        ? static_cast<const void*>(
                              &reinterpret_cast<const sockaddr_in6*>(&peer_address)->sin6_addr)
                        : static_cast<const void*>(
                              &reinterpret_cast<const sockaddr_in*>(&peer_address)->sin_addr);
  if (inet_ntop(peer_address.ss_family, raw, host, sizeof(host)) == nullptr) return;
  if (address == host) ::shutdown(fd, SHUT_RDWR);
}

void Engine::note_stranger(int lane, const std::string& why) {
  // Anyone can connect to a listening port; log without letting a flood fill the log.
  const uint64_t count = ++receive_lanes_[static_cast<size_t>(lane)].strangers;
  if (is_power_of_two(count)) {
    log_->warn("{}: dropped a message on lane {} from an unknown sender ({}); {} so far", who(),
               lane, why, count);
  }
}

void Engine::drain_router_monitor(int lane) {
  ReceiveLane& receive = receive_lanes_[static_cast<size_t>(lane)];
  while (receive.router) {
    const auto event = receive.router.next_event();
    if (!event) return;
    if (event->event != ZMQ_EVENT_DISCONNECTED) continue;
    const auto found = receive.peer_by_fd.find(static_cast<int>(event->value));
    if (found == receive.peer_by_fd.end()) continue;  // a stranger, or a peer already lost
    const int peer = found->second;
    receive.peer_by_fd.erase(found);
    // The peer said goodbye on this lane, then closed it: everything it sent here arrived. Its
    // other lanes' goodbyes may still be unread (each lane is its own connection), and they
    // decide whether it left or was lost.
    if (departures_.lane_said_goodbye(peer, lane)) continue;
    lose_peer(peer, ErrorKind::kPeerLost,
              "its lane " + std::to_string(lane) +
                  " connection to this rank closed (process exited, connection reset, or no "
                  "heartbeat answer within " +
                  std::to_string(options_.peer_timeout.count()) + " ms)");
  }
}

void Engine::drain_dealer_monitor(SendLane& link) {
  while (link.dealer) {
    const auto event = link.dealer.next_event();
    if (!event) return;
    switch (event->event) {
      case ZMQ_EVENT_DISCONNECTED:
        // A reverse link's peer that said goodbye here closes this connection itself.
        if (link.carrier == Carrier::kOurDealer &&
            departures_.lane_said_goodbye(link.peer, link.lane)) {
          break;
        }
        lose_peer(link.peer, ErrorKind::kPeerLost,
                  "the lane " + std::to_string(link.lane) + " connection to it (" + link.endpoint +
                      ") closed (process exited, connection reset, or no heartbeat answer "
                      "within " +
                      std::to_string(options_.peer_timeout.count()) + " ms)");
        return;  // its sockets are closed now
      case ZMQ_EVENT_CONNECTED:
        // Data flows from this DEALER, so its end decides the congestion control. The descriptor
        // is ZMQ's and open: a close would have queued DISCONNECTED behind this event.
        if (!tuning_.congestion.empty()) {
          const std::string problem = apply_socket_tuning(static_cast<int>(event->value),
                                                          SocketTuning{0, 0, tuning_.congestion});
          if (!problem.empty()) {
            log_->debug("{}: rank {} lane {}: {}", who(), link.peer, link.lane, problem);
          }
        }
        break;
      case ZMQ_EVENT_CONNECT_RETRIED:
        link.last_problem = "connection to " + link.endpoint + " refused or unreachable, retrying";
        break;
      case ZMQ_EVENT_HANDSHAKE_SUCCEEDED:
        link.last_problem = "connected to " + link.endpoint + ", but its own hello never came";
        break;
      case ZMQ_EVENT_HANDSHAKE_FAILED_NO_DETAIL:
      case ZMQ_EVENT_HANDSHAKE_FAILED_PROTOCOL:
      case ZMQ_EVENT_HANDSHAKE_FAILED_AUTH:
        link.last_problem =
            "ZMTP handshake with " + link.endpoint + " failed (is it a torchwan zmq port?)";
        log_->warn("{}: rank {} lane {}: {}", who(), link.peer, link.lane, link.last_problem);
        break;
      default:
        break;
    }
  }
}

void Engine::drain_relay() {
  std::vector<RelayLink::Problem> problems;
  relay_->receive(
      [this](int peer, int lane, std::vector<::zmq::message_t>& parts) {
        handle_frames(Arrival{peer, lane, nullptr}, parts, parts.size());
      },
      problems);
  for (const RelayLink::Problem& problem : problems) {
    for (int peer = 0; peer < size_; ++peer) {
      if (carriers_[static_cast<size_t>(peer)] != Carrier::kRelay) continue;
      if (problem.peer >= 0 && problem.peer != peer) continue;
      lose_peer(peer, ErrorKind::kPeerLost, problem.why);
    }
  }
}

void Engine::keep_relayed_peers_alive() {
  const auto now = std::chrono::steady_clock::now();
  auto relayed = [this](int peer) {
    return carriers_[static_cast<size_t>(peer)] == Carrier::kRelay &&
           !lost_[static_cast<size_t>(peer)];
  };
  for (int peer = 0; peer < size_; ++peer) {
    if (relayed(peer)) relay_liveness_.heard(peer, relay_->last_heard(peer));
  }
  const core::PeerLiveness::Check check = relay_liveness_.check(now, relayed);
  if (bootstrapped_) {
    if (check.held_up) {
      log_->warn("{}: progress thread was held up for {} ms; restarting relayed peers' timers",
                 who(),
                 std::chrono::duration_cast<std::chrono::milliseconds>(*check.held_up).count());
    }
    for (int peer : check.silent) {
      lose_peer(peer, ErrorKind::kPeerLost,
                fmt::format("{} through the relay at {} (it exited, or its connection to the "
                            "relay or this rank's is gone)",
                            relay_liveness_.describe_silence(peer, now), relay_->endpoint()));
    }
  }
  for (int peer : check.heartbeat_due) {
    if (leaving_ || lost_[static_cast<size_t>(peer)]) continue;
    // Behind queued data the peer hears this rank anyway.
    SendLane& lane0 = send_lane(peer, 0);
    if (!lane0.queue.empty() || !lane0.relay_out.empty()) continue;
    lane0.queue.push_back(control_frame(core::Heartbeat{}));
    relay_liveness_.sent(peer, now);
  }
}

}  // namespace torchwan::transport::zmq_detail
