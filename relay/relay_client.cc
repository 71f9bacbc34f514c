#include "relay/relay_client.h"

#include <fmt/format.h>

#include <algorithm>
#include <sstream>

#include "relay/relay_tcp.h"
#include "relay/relay_wire.h"
#include "transport/secure/control_security.h"

namespace torchwan::relay {
namespace {

using Clock = std::chrono::steady_clock;

std::span<const uint8_t> view(const ::zmq::message_t& message) {
  return {static_cast<const uint8_t*>(message.data()), message.size()};
}

}  // namespace

std::vector<std::string> parse_relay_endpoints(const std::string& list) {
  std::vector<std::string> endpoints;
  std::stringstream stream(list);
  std::string entry;
  while (std::getline(stream, entry, ',')) {
    if (entry.empty()) continue;
    const auto colon = entry.rfind(':');
    bool valid_port = colon != std::string::npos && colon > 0 && colon + 1 < entry.size();
    if (valid_port) {
      const std::string port = entry.substr(colon + 1);
      valid_port = port.size() <= 5 && std::all_of(port.begin(), port.end(), ::isdigit) &&
                   std::stoi(port) > 0 && std::stoi(port) < 65536;
    }
    if (!valid_port) {
      throw std::invalid_argument("TORCHWAN_RELAY: '" + entry +
                                  "' is not host:port (expected host:port[,host:port])");
    }
    endpoints.push_back("tcp://" + entry);
  }
  if (endpoints.empty()) throw std::invalid_argument("TORCHWAN_RELAY: no relay given");
  return endpoints;
}

RelayClient::RelayClient(RelayClientOptions options)
    : options_(std::move(options)),
      own_context_(options_.context == nullptr ? std::optional<::zmq::context_t>(std::in_place, 1)
                                               : std::nullopt),
      context_(options_.context != nullptr ? *options_.context : *own_context_) {
  if (options_.endpoints.empty()) throw RelayError("relay client: no relay endpoint given");
  if (options_.member.empty() || options_.member.size() > kMaxIdBytes) {
    throw RelayError(fmt::format("relay client: member id must have 1 to {} bytes", kMaxIdBytes));
  }
  std::vector<std::string> failures;
  for (const auto& endpoint : options_.endpoints) {
    std::string why;
    if (try_register(endpoint, why)) return;
    failures.push_back(endpoint + ": " + why);
  }
  throw RelayError(fmt::format("member '{}' could not register at any relay: {}", options_.member,
                               fmt::join(failures, "; ")));
}

RelayClient::~RelayClient() {
  monitor_.reset();  // stops watching before the dealer closes
}

bool RelayClient::try_register(const std::string& endpoint, std::string& why) {
  monitor_.reset();
  dealer_ = std::make_unique<::zmq::socket_t>(context_, ::zmq::socket_type::dealer);
  dealer_->set(::zmq::sockopt::linger, 0);
  // Unbounded pipes: the relay's windows bound what can be queued either way.
  dealer_->set(::zmq::sockopt::sndhwm, 0);
  dealer_->set(::zmq::sockopt::rcvhwm, 0);
  if (options_.secret) elastic::make_curve_client(*dealer_, *options_.secret);
  // A fresh name per attempt: the previous attempt's monitor endpoint may not be gone yet.
  monitor_ = std::make_unique<elastic::SocketMonitor>(
      context_, *dealer_,
      fmt::format("relay-client-{}-{}", reinterpret_cast<uintptr_t>(this), ++attempts_));
  dealer_->connect(endpoint);
  const auto request = encode_frame(register_frame(options_.job_id, options_.member));
  (void)dealer_->send(::zmq::buffer(request), ::zmq::send_flags::dontwait);
  const auto deadline = Clock::now() + options_.timeout;
  int closed_handshakes = 0;
  // False on a failed handshake. Tunes the connection as soon as it is made.
  const auto watch_events = [&] {
    while (const auto event = monitor_->next()) {
      if (event->event == ZMQ_EVENT_CONNECTED && !options_.congestion.empty()) {
        // The descriptor is ZeroMQ's and open: a close would have queued DISCONNECTED after this.
        tuning_problem_ = set_congestion_control(event->value, options_.congestion);
      }
      if (event->event == ZMQ_EVENT_HANDSHAKE_FAILED_AUTH ||
          event->event == ZMQ_EVENT_HANDSHAKE_FAILED_PROTOCOL ||
          (event->event == ZMQ_EVENT_HANDSHAKE_FAILED_NO_DETAIL && ++closed_handshakes >= 2)) {
        why = "the relay refused the handshake (" + elastic::describe_handshake_failure(*event) +
              "; wrong or missing job secret?)";
        return false;
      }
    }
    return true;
  };
  while (Clock::now() < deadline) {
    if (!watch_events()) return false;
    std::vector<::zmq::pollitem_t> items = {{dealer_->handle(), 0, ZMQ_POLLIN, 0}};
    ::zmq::poll(items, std::chrono::milliseconds(20));
    if ((items[0].revents & ZMQ_POLLIN) == 0) continue;
    ::zmq::message_t header;
    (void)dealer_->recv(header, ::zmq::recv_flags::none);
    if (header.more()) {
      why = "the relay answered with more than one frame";
      return false;
    }
    const Frame frame = decode_frame(view(header));
    if (frame.type == FrameType::kRefused) {
      why = "the relay refused the registration: " + frame.reason;
      return false;
    }
    if (frame.type != FrameType::kRegistered) {
      why = fmt::format("the relay answered REGISTER with {}", frame_type_name(frame.type));
      return false;
    }
    // The connection was made before the answer came, so its CONNECTED event is queued by now.
    (void)watch_events();
    endpoint_ = endpoint;
    window_bytes_ = frame.window_bytes;
    max_chunk_bytes_ =
        static_cast<uint32_t>(std::min<uint64_t>(frame.max_chunk_bytes, frame.window_bytes));
    return true;
  }
  why = fmt::format("no answer within {} ms", options_.timeout.count());
  return false;
}

void RelayClient::throw_if_failed(const std::string& peer) {
  if (!refused_.empty()) {
    throw RelayError("the relay dropped member '" + options_.member + "': " + refused_);
  }
  if (const auto it = no_route_.find(peer); it != no_route_.end()) {
    // Reported once: the peer may register later, and then a new send should go through.
    const std::string reason = it->second;
    no_route_.erase(it);
    throw RelayError("the relay has no route to '" + peer + "': " + reason);
  }
}

void RelayClient::send(const std::string& peer, uint32_t lane, std::span<const uint8_t> bytes) {
  if (peer.empty() || peer.size() > kMaxIdBytes) {
    throw RelayError(fmt::format("relay client: peer id must have 1 to {} bytes", kMaxIdBytes));
  }
  const Stream stream{peer, lane};
  size_t offset = 0;
  while (offset < bytes.size()) {
    throw_if_failed(peer);
    const size_t chunk = std::min<size_t>(max_chunk_bytes_, bytes.size() - offset);
    wait_for_credit(stream, chunk);
    send_now(peer, lane, bytes.subspan(offset, chunk));
    offset += chunk;
    pump(std::chrono::milliseconds(0));  // take credit as it comes, without waiting
  }
}

uint64_t RelayClient::room(const std::string& peer, uint32_t lane) {
  const uint64_t used = in_flight_[{peer, lane}];
  return used < window_bytes_ ? window_bytes_ - used : 0;
}

void RelayClient::send_now(const std::string& peer, uint32_t lane, std::span<const uint8_t> bytes) {
  throw_if_failed(peer);
  const auto header = encode_frame(data_frame(peer, lane, bytes.size()));
  (void)dealer_->send(::zmq::buffer(header), ::zmq::send_flags::sndmore);
  (void)dealer_->send(::zmq::buffer(bytes.data(), bytes.size()), ::zmq::send_flags::none);
  in_flight_[{peer, lane}] += bytes.size();
}

std::vector<std::pair<std::string, std::string>> RelayClient::take_no_routes() {
  std::vector<std::pair<std::string, std::string>> routes(no_route_.begin(), no_route_.end());
  no_route_.clear();
  return routes;
}

void RelayClient::flush(const std::string& peer, uint32_t lane) {
  wait_for_credit({peer, lane}, window_bytes_);
}

void RelayClient::wait_for_credit(const Stream& stream, uint64_t wanted_free) {
  auto last_progress = Clock::now();
  while (true) {
    throw_if_failed(stream.first);
    const uint64_t used = in_flight_[stream];
    if (used + wanted_free <= window_bytes_) return;
    if (pump(std::chrono::milliseconds(20))) {
      if (in_flight_[stream] < used) last_progress = Clock::now();
    }
    if (Clock::now() - last_progress > options_.timeout) {
      throw RelayError(fmt::format(
          "no credit from '{}' on lane {} within {} ms ({} bytes unacknowledged): the peer stopped "
          "reading",
          stream.first, stream.second, options_.timeout.count(), in_flight_[stream]));
    }
  }
}

std::optional<RelayedMessage> RelayClient::receive(std::chrono::milliseconds timeout) {
  const auto deadline = Clock::now() + timeout;
  while (inbox_.empty()) {
    if (!refused_.empty()) throw_if_failed("");
    const auto left =
        std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now());
    if (left.count() <= 0 && !pump(std::chrono::milliseconds(0))) return std::nullopt;
    if (left.count() > 0) pump(left);
  }
  return take();
}

std::optional<RelayedMessage> RelayClient::take() {
  if (inbox_.empty()) return std::nullopt;
  RelayedMessage message = std::move(inbox_.front());
  inbox_.pop_front();
  const auto credit =
      encode_frame(credit_frame(message.peer, message.lane, message.payload.size()));
  (void)dealer_->send(::zmq::buffer(credit), ::zmq::send_flags::none);
  return message;
}

bool RelayClient::pump(std::chrono::milliseconds timeout) {
  std::vector<::zmq::pollitem_t> items = {{dealer_->handle(), 0, ZMQ_POLLIN, 0}};
  ::zmq::poll(items, timeout);
  bool got = false;
  while (true) {
    ::zmq::message_t header;
    if (!dealer_->recv(header, ::zmq::recv_flags::dontwait)) return got;
    got = true;
    ::zmq::message_t payload;
    if (header.more()) (void)dealer_->recv(payload, ::zmq::recv_flags::none);
    while (payload.more()) {  // a relay never sends more; discard rather than misread
      ::zmq::message_t extra;
      (void)dealer_->recv(extra, ::zmq::recv_flags::none);
      payload = std::move(extra);
    }
    const Frame frame = decode_frame(view(header));
    switch (frame.type) {
      case FrameType::kData: {
        if (payload.size() != frame.bytes) {
          throw RelayError(fmt::format("relay sent DATA announcing {} bytes with {}", frame.bytes,
                                       payload.size()));
        }
        inbox_.push_back({frame.peer, frame.lane, std::move(payload)});
        break;
      }
      case FrameType::kCredit: {
        auto& used = in_flight_[{frame.peer, frame.lane}];
        used -= std::min(used, frame.bytes);
        break;
      }
      case FrameType::kNoRoute:
        no_route_[frame.peer] = frame.reason;
        for (auto& [stream, used] : in_flight_) {
          if (stream.first == frame.peer) used = 0;
        }
        break;
      case FrameType::kRefused:
        refused_ = frame.reason;
        break;
      default:
        break;  // a repeated REGISTERED
    }
  }
}

}  // namespace torchwan::relay
