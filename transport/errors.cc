#include "transport/errors.h"

namespace torchwan::transport {

const char* error_kind_name(ErrorKind kind) {
  switch (kind) {
    case ErrorKind::kPeerLost:
      return "peer lost";
    case ErrorKind::kTimeout:
      return "timeout";
    case ErrorKind::kCanceled:
      return "canceled";
    case ErrorKind::kAborted:
      return "aborted";
    case ErrorKind::kBootstrap:
      return "bootstrap";
    case ErrorKind::kProtocol:
      return "protocol";
    case ErrorKind::kSizeMismatch:
      return "size mismatch";
    case ErrorKind::kMismatch:
      return "call mismatch";
    case ErrorKind::kInvalidArgument:
      return "invalid argument";
    case ErrorKind::kInternal:
      return "internal";
  }
  return "unknown";
}

}  // namespace torchwan::transport
