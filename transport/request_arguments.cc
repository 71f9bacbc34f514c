#include "transport/request_arguments.h"

#include "transport/errors.h"

namespace torchwan::transport {

std::string request_argument_problem(int rank, int size, std::optional<int> peer, Tag tag,
                                     const void* data, size_t length) {
  if (!peer) {
    if (size == 1) return "a 1-rank group has no peer to receive from";
  } else if (*peer < 0 || *peer >= size) {
    return "peer " + std::to_string(*peer) + " is not a rank of this " + std::to_string(size) +
           "-rank group";
  } else if (*peer == rank) {
    return "peer " + std::to_string(*peer) + " is this rank (self-sends are not supported)";
  }
  if (tag >= kMaxTag) return "tag " + std::to_string(tag) + " is not below 2^48";
  if (data == nullptr && length > 0) return "null buffer for " + std::to_string(length) + " bytes";
  return {};
}

void check_request_arguments(const std::string& who, const char* call, int rank, int size,
                             std::optional<int> peer, Tag tag, const void* data, size_t length) {
  const std::string problem = request_argument_problem(rank, size, peer, tag, data, length);
  if (problem.empty()) return;
  // The peer is named only when it is a real rank: a bad argument is not that rank's fault, but
  // a valid peer still tells the caller which exchange the call belonged to.
  const bool real_peer = peer && *peer >= 0 && *peer < size;
  throw TransportError(ErrorKind::kInvalidArgument, who + ": " + call + ": " + problem,
                       real_peer ? *peer : -1);
}

}  // namespace torchwan::transport
