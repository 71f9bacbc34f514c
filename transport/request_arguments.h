// The checks every transport makes on the arguments of isend, irecv and irecv_any before its
// engine sees them, so that all of them refuse the same calls in the same words.
#pragma once

#include <cstddef>
#include <optional>
#include <string>

#include "transport/posting.h"
#include "transport/request.h"

namespace torchwan::transport {

// Why `rank` of a `size`-rank group may not post a request with these arguments, or an empty
// string when it may. `peer` is nullopt for irecv_any (whichever rank sends first); an explicit
// peer must be another rank of the group, so kAnySource passed to isend or irecv is refused.
std::string request_argument_problem(int rank, int size, std::optional<int> peer, Tag tag,
                                     const void* data, size_t length);

// Throws TransportError(kInvalidArgument) "`who`: `call`: <problem>" when there is a problem.
void check_request_arguments(const std::string& who, const char* call, int rank, int size,
                             std::optional<int> peer, Tag tag, const void* data, size_t length);
// The same for what a Transport's post() receives.
inline void check_request_arguments(const std::string& who, int rank, int size,
                                    const Posting& posting) {
  check_request_arguments(who, posting.call(), rank, size, posting.named_peer(), posting.tag,
                          posting.data, posting.length);
}

}  // namespace torchwan::transport
