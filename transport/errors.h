// Exceptions raised by the transport layer. Every message names the peer and the cause so that a
// user reading a failed collective knows which machine to look at.
#pragma once

#include <stdexcept>
#include <string>
#include <utility>

namespace torchwan::transport {

enum class ErrorKind {
  kPeerLost,      // connection reset, endpoint error, heartbeat silence
  kTimeout,       // a wait or a bootstrap step ran past its deadline
  kCanceled,      // the request was canceled by its owner
  kAborted,       // the transport was aborted (shutdown, failure elsewhere in the group)
  kBootstrap,     // address exchange or connection setup failed
  kProtocol,      // malformed or unexpected wire data from a peer
  kSizeMismatch,  // sender and receiver disagree on a message length
  kMismatch,      // ranks disagree on the collective call itself (kind, dtype, count, op, root)
  kInvalidArgument,
  kInternal,
};

const char* error_kind_name(ErrorKind kind);

// The message is held in a std::string of its own, not in std::runtime_error's reference-counted
// buffer, so that a copy shares no storage with the original: a request's error is created and
// finally released on the progress thread, and callers get a copy of it (Request::error, wait).
class TransportError : public std::runtime_error {
 public:
  TransportError(ErrorKind kind, std::string message, int peer = -1)
      : std::runtime_error(std::string()), message_(std::move(message)), kind_(kind), peer_(peer) {}
  const char* what() const noexcept override { return message_.c_str(); }
  ErrorKind kind() const { return kind_; }
  // The peer rank involved, or -1 when the error is not tied to one peer.
  int peer() const { return peer_; }

 private:
  std::string message_;
  ErrorKind kind_;
  int peer_;
};

}  // namespace torchwan::transport
