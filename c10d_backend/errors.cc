#include "c10d_backend/errors.h"

#include <string>

#include "transport/errors.h"

namespace torchwan::c10d_backend {

namespace {

std::string timed_out(std::optional<std::chrono::milliseconds> timeout, int peer) {
  // Appended piece by piece: GCC 12 misreports `" " + std::to_string(...)` (-Wrestrict).
  std::string text = "Timed out waiting";
  if (timeout) text.append(" ").append(std::to_string(timeout->count())).append("ms");
  if (peer >= 0) text.append(" for rank ").append(std::to_string(peer));
  return text.append(": ");
}

}  // namespace

std::exception_ptr wan_error(const std::string& context, const std::exception& cause,
                             std::optional<std::chrono::milliseconds> timeout) {
  const auto* c10_error = dynamic_cast<const c10::Error*>(&cause);
  const std::string what =
      c10_error != nullptr ? c10_error->what_without_backtrace() : cause.what();
  const std::string message = context + ": " + what;
  const auto* transport_error = dynamic_cast<const transport::TransportError*>(&cause);
  if (transport_error == nullptr) return make_error<WanError>(message);
  const int peer = transport_error->peer();
  if (transport_error->kind() == transport::ErrorKind::kTimeout) {
    return make_error<WanTimeoutError>(context + ": " + timed_out(timeout, peer) + what, peer);
  }
  return error_of_kind(transport_error->kind(), message, peer);
}

std::exception_ptr error_of_kind(transport::ErrorKind kind, const std::string& message, int peer) {
  switch (kind) {
    case transport::ErrorKind::kTimeout:
      return make_error<WanTimeoutError>(message, peer);
    case transport::ErrorKind::kPeerLost:
      return make_error<WanPeerLostError>(message, peer);
    case transport::ErrorKind::kSizeMismatch:
    case transport::ErrorKind::kMismatch:
      return make_error<WanMismatchError>(message, peer);
    case transport::ErrorKind::kAborted:
    case transport::ErrorKind::kCanceled:
      return make_error<WanAbortedError>(message, peer);
    default:
      return make_error<WanError>(message, peer);
  }
}

}  // namespace torchwan::c10d_backend
