#include "transport/peer_records.h"

#include "transport/deadline.h"
#include "transport/errors.h"

namespace torchwan::transport {

std::vector<int> read_peer_records(
    Store& store, int rank, int size, const std::function<std::string(int peer)>& key_of,
    std::chrono::steady_clock::time_point deadline,
    const std::function<void(int peer, std::vector<uint8_t> bytes)>& on_record) {
  std::vector<int> missing;
  for (int peer = 0; peer < size; ++peer) {
    if (peer == rank) continue;
    std::vector<uint8_t> bytes;
    try {
      bytes = store.get(key_of(peer), time_left(deadline));
    } catch (const TransportError& error) {
      if (error.kind() != ErrorKind::kBootstrap && error.kind() != ErrorKind::kTimeout) throw;
      missing.push_back(peer);
      continue;
    }
    on_record(peer, std::move(bytes));
  }
  return missing;
}

}  // namespace torchwan::transport
