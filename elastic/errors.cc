#include "elastic/errors.h"

#include "base/byte_io.h"

namespace torchwan::elastic {

const char* wire_error_kind_name(WireErrorKind kind) {
  switch (kind) {
    case WireErrorKind::kTruncated:
      return "truncated";
    case WireErrorKind::kBadMagic:
      return "bad magic";
    case WireErrorKind::kBadVersion:
      return "bad protocol version";
    case WireErrorKind::kBadType:
      return "bad message type";
    case WireErrorKind::kWrongJob:
      return "wrong job";
    case WireErrorKind::kOversize:
      return "oversize";
    case WireErrorKind::kLengthMismatch:
      return "length mismatch";
    case WireErrorKind::kBadChecksum:
      return "bad checksum";
    case WireErrorKind::kMalformedPayload:
      return "malformed payload";
    case WireErrorKind::kTrailingBytes:
      return "trailing bytes";
  }
  return "unknown";
}

WireError::WireError(WireErrorKind kind, const std::string& message)
    : std::runtime_error(std::string(wire_error_kind_name(kind)) + ": " + message), kind_(kind) {}

WireError::WireError(const base::MalformedBytes& malformed)
    : std::runtime_error(malformed.what()),
      kind_(malformed.problem() == base::MalformedBytes::Problem::kTrailing
                ? WireErrorKind::kTrailingBytes
                : WireErrorKind::kMalformedPayload) {}

}  // namespace torchwan::elastic
