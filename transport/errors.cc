#include "transport/errors.h"

#include <iterator>

#include "base/enum_names.h"

namespace torchwan::transport {

namespace {

constexpr const char* kErrorKindNames[] = {
    "peer lost", "timeout",       "canceled",      "aborted",          "bootstrap",
    "protocol",  "size mismatch", "call mismatch", "invalid argument", "internal"};
static_assert(std::size(kErrorKindNames) == static_cast<size_t>(ErrorKind::kInternal) + 1);

}  // namespace

const char* error_kind_name(ErrorKind kind) { return base::enum_name(kind, kErrorKindNames); }

}  // namespace torchwan::transport
