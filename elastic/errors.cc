#include "elastic/errors.h"

#include <iterator>

#include "base/byte_io.h"
#include "base/enum_names.h"

namespace torchwan::elastic {

namespace {

constexpr const char* kWireErrorKindNames[] = {
    "truncated", "bad magic",       "bad protocol version", "bad message type",  "wrong job",
    "oversize",  "length mismatch", "bad checksum",         "malformed payload", "trailing bytes"};
static_assert(std::size(kWireErrorKindNames) ==
              static_cast<size_t>(WireErrorKind::kTrailingBytes) + 1);

}  // namespace

const char* wire_error_kind_name(WireErrorKind kind) {
  return base::enum_name(kind, kWireErrorKindNames);
}

WireError::WireError(WireErrorKind kind, const std::string& message)
    : std::runtime_error(std::string(wire_error_kind_name(kind)) + ": " + message), kind_(kind) {}

WireError::WireError(const base::MalformedBytes& malformed)
    : std::runtime_error(malformed.what()),
      kind_(malformed.problem() == base::MalformedBytes::Problem::kTrailing
                ? WireErrorKind::kTrailingBytes
                : WireErrorKind::kMalformedPayload) {}

}  // namespace torchwan::elastic
