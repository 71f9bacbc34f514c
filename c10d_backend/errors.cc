#include "c10d_backend/errors.h"

#include "transport/errors.h"

namespace torchwan::c10d_backend {

std::exception_ptr wan_error(const std::string& context, const std::exception& cause) {
  const auto* c10_error = dynamic_cast<const c10::Error*>(&cause);
  const std::string message =
      context + ": " + (c10_error != nullptr ? c10_error->what_without_backtrace() : cause.what());
  const auto* transport_error = dynamic_cast<const transport::TransportError*>(&cause);
  if (transport_error == nullptr) return make_error<WanError>(message);
  const int peer = transport_error->peer();
  switch (transport_error->kind()) {
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
