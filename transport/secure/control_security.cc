#include "transport/secure/control_security.h"

#include <fmt/format.h>

#include <cstring>
#include <stdexcept>

namespace torchwan::elastic {

void require_curve() {
  if (!zmq_has("curve")) {
    throw std::runtime_error(
        "torchwan: a job secret was given but this libzmq has no CURVE support "
        "(zmq_has(\"curve\") is false); install a libzmq built with libsodium");
  }
}

void make_curve_server(::zmq::socket_t& socket, const security::JobSecret& secret) {
  require_curve();
  const security::CurveKeyPair keys = secret.curve_keys();
  socket.set(::zmq::sockopt::curve_server, 1);
  socket.set(::zmq::sockopt::curve_secretkey, keys.secret_key);
  // Without a domain libzmq still consults the ZAP handler for CURVE, but naming it keeps the
  // handler's logs readable should other sockets share the context.
  socket.set(::zmq::sockopt::zap_domain, "torchwan-membership");
}

void make_curve_client(::zmq::socket_t& socket, const security::JobSecret& secret) {
  require_curve();
  const security::CurveKeyPair keys = secret.curve_keys();
  socket.set(::zmq::sockopt::curve_serverkey, keys.public_key);
  socket.set(::zmq::sockopt::curve_publickey, keys.public_key);
  socket.set(::zmq::sockopt::curve_secretkey, keys.secret_key);
}

std::string describe_handshake_failure(const SocketEvent& event) {
  switch (event.event) {
    case ZMQ_EVENT_HANDSHAKE_FAILED_AUTH:
      return fmt::format("the authenticator refused the key (ZAP status {})", event.value);
    case ZMQ_EVENT_HANDSHAKE_FAILED_PROTOCOL:
      if (event.value == ZMQ_PROTOCOL_ERROR_ZMTP_MECHANISM_MISMATCH) {
        return "security mechanism mismatch (one side uses CURVE, the other none)";
      }
      if (event.value == ZMQ_PROTOCOL_ERROR_ZMTP_CRYPTOGRAPHIC) {
        return "CURVE cryptographic check failed (different keys)";
      }
      return fmt::format("handshake protocol error {:#x}", event.value);
    case ZMQ_EVENT_HANDSHAKE_FAILED_NO_DETAIL:
      return fmt::format("connection closed during the handshake ({})", std::strerror(event.value));
    default:
      return fmt::format("socket event {:#x}", event.event);
  }
}

SocketMonitor::SocketMonitor(::zmq::context_t& context, ::zmq::socket_t& watched,
                             const std::string& name)
    : watched_(watched), pair_(context, ::zmq::socket_type::pair) {
  const std::string endpoint = "inproc://torchwan-monitor-" + name;
  const int events = ZMQ_EVENT_CONNECTED | ZMQ_EVENT_DISCONNECTED | ZMQ_EVENT_ACCEPTED |
                     ZMQ_EVENT_HANDSHAKE_SUCCEEDED | ZMQ_EVENT_HANDSHAKE_FAILED_AUTH |
                     ZMQ_EVENT_HANDSHAKE_FAILED_PROTOCOL | ZMQ_EVENT_HANDSHAKE_FAILED_NO_DETAIL;
  if (zmq_socket_monitor(watched_.handle(), endpoint.c_str(), events) != 0) {
    throw ::zmq::error_t();
  }
  pair_.set(::zmq::sockopt::linger, 0);
  pair_.connect(endpoint);
}

SocketMonitor::~SocketMonitor() {
  // Stops the monitor before the PAIR closes, so libzmq never writes to a vanished peer.
  zmq_socket_monitor(watched_.handle(), nullptr, 0);
}

std::optional<SocketEvent> SocketMonitor::next() {
  ::zmq::message_t head;
  if (!pair_.recv(head, ::zmq::recv_flags::dontwait)) return std::nullopt;
  SocketEvent event;
  if (head.size() >= 6) {
    std::memcpy(&event.event, head.data(), sizeof(event.event));
    std::memcpy(&event.value, static_cast<const char*>(head.data()) + 2, sizeof(event.value));
  }
  while (head.more()) {
    ::zmq::message_t part;
    if (!pair_.recv(part, ::zmq::recv_flags::none)) break;
    event.address = part.to_string();
    if (!part.more()) break;
  }
  return event;
}

}  // namespace torchwan::elastic
