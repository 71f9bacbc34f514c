// Authentication of the membership control plane: ZeroMQ CURVE with the key pair every holder of
// the job secret derives (job_secret.h), and a watch on the handshake events of a socket
// so that a failed handshake becomes a logged reason or a clear error instead of silence.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <zmq.hpp>

#include "transport/secure/job_secret.h"

namespace torchwan::elastic {

// Throws std::runtime_error when this process's libzmq was built without CURVE: running a job
// that asked for a secret without authentication would be worse than not running it.
void require_curve();

// The coordinator's ROUTER: a CURVE server (its ZAP handler then decides which clients may join).
void make_curve_server(::zmq::socket_t& socket, const security::JobSecret& secret);
// A member's DEALER: a CURVE client that also checks the server holds the same secret.
void make_curve_client(::zmq::socket_t& socket, const security::JobSecret& secret);

struct SocketEvent {
  uint16_t event = 0;  // ZMQ_EVENT_*
  int32_t value = 0;   // fd, errno, protocol error or ZAP status code, depending on the event
  std::string address;
};

// Readable text for a ZMQ_EVENT_HANDSHAKE_FAILED_* event (no key material is ever involved).
std::string describe_handshake_failure(const SocketEvent& event);

// Connection and handshake events of one socket, read without blocking from an inproc PAIR.
class SocketMonitor {
 public:
  // `name` must be unique within `context`. Must be destroyed before the watched socket closes.
  SocketMonitor(::zmq::context_t& context, ::zmq::socket_t& watched, const std::string& name);
  ~SocketMonitor();
  SocketMonitor(const SocketMonitor&) = delete;
  SocketMonitor& operator=(const SocketMonitor&) = delete;

  ::zmq::socket_t& socket() { return pair_; }
  std::optional<SocketEvent> next();

 private:
  ::zmq::socket_t& watched_;
  ::zmq::socket_t pair_;
};

}  // namespace torchwan::elastic
