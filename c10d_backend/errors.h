// The exceptions a failed operation raises. All derive from c10::DistBackendError, so C++ callers
// and torch's own Python translation keep working; the Python module maps each one to the
// matching class in torchwan.errors so users can tell a timeout from a lost peer.
#pragma once

#include <c10/util/Exception.h>

#include <chrono>
#include <exception>
#include <optional>
#include <string>
#include <utility>

namespace torchwan::transport {
enum class ErrorKind;  // transport/errors.h
}

namespace torchwan {

class WanError : public c10::DistBackendError {
 public:
  // `peer`: the group rank the failure is tied to (the rank lost, or the one a timed-out
  // operation was still waiting for), or -1 when no single rank is to blame.
  WanError(c10::SourceLocation location, std::string message, int peer = -1)
      : c10::DistBackendError(location, std::move(message)), peer_(peer) {}
  int peer() const { return peer_; }

 private:
  int peer_;
};
// The operation's deadline passed (a rank never joined the call, or the network stalled).
class WanTimeoutError : public WanError {
 public:
  using WanError::WanError;
};
// A peer went away (connection reset, heartbeat silence) while the operation needed it.
class WanPeerLostError : public WanError {
 public:
  using WanError::WanError;
};
// Ranks called different collectives, or the same one with different sizes, dtypes, ops or roots.
class WanMismatchError : public WanError {
 public:
  using WanError::WanError;
};
// The group was aborted or shut down while the operation was pending.
class WanAbortedError : public WanError {
 public:
  using WanError::WanError;
};

namespace c10d_backend {

// Wraps `cause` (a transport or engine exception) in the WanError subclass that fits it; the
// message is `context` followed by the cause's message. A timeout's message says "Timed out
// waiting <timeout>ms for rank <peer>" before the cause, in the words Gloo uses, because tools and
// torch's own tests match on them.
std::exception_ptr wan_error(const std::string& context, const std::exception& cause,
                             std::optional<std::chrono::milliseconds> timeout = std::nullopt);

// The WanError subclass for a failure of `kind` (a timeout, a lost peer, ...), with `message` as
// it is.
std::exception_ptr error_of_kind(transport::ErrorKind kind, const std::string& message, int peer);

// Builds an exception of type E with the given message, ready to store in a Work or Future.
template <typename E>
std::exception_ptr make_error(const std::string& message, int peer = -1) {
  return std::make_exception_ptr(
      E(c10::SourceLocation{__func__, __FILE__, __LINE__}, message, peer));
}

}  // namespace c10d_backend
}  // namespace torchwan
