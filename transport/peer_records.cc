#include "transport/peer_records.h"

#include <algorithm>
#include <map>
#include <optional>

#include "base/deadline.h"
#include "transport/errors.h"
#include "transport/wait_progress.h"

namespace torchwan::transport {

namespace {

using Clock = std::chrono::steady_clock;

bool is_missing_key(const TransportError& error) {
  return error.kind() == ErrorKind::kBootstrap || error.kind() == ErrorKind::kTimeout;
}

// One look at `key` that gives up after `timeout`: the record, or nothing while it is missing.
std::optional<std::vector<uint8_t>> try_get(Store& store, const std::string& key,
                                            std::chrono::milliseconds timeout) {
  try {
    return store.get(key, timeout);
  } catch (const TransportError& error) {
    if (!is_missing_key(error)) throw;
    return std::nullopt;
  }
}

}  // namespace

std::vector<int> read_peer_records(
    Store& store, int rank, int size, const std::function<std::string(int peer)>& key_of,
    std::chrono::steady_clock::time_point deadline,
    const std::function<void(int peer, std::vector<uint8_t> bytes)>& on_record) {
  std::vector<int> missing;
  // Records of later peers already read by a progress look, handed over in rank order later.
  std::map<int, std::vector<uint8_t>> ahead;
  WaitProgress progress;
  const int peers = size - 1;
  for (int peer = 0; peer < size; ++peer) {
    if (peer == rank) continue;
    std::optional<std::vector<uint8_t>> bytes;
    if (auto found = ahead.find(peer); found != ahead.end()) {
      bytes = std::move(found->second);
      ahead.erase(found);
    }
    // The wait is cut in slices so that a long one can say, every few seconds, whom it is for.
    while (!bytes) {
      bytes =
          try_get(store, key_of(peer), std::min(base::time_left(deadline), progress.until_due()));
      if (bytes || Clock::now() >= deadline) break;
      progress.maybe_log([&] {
        std::vector<int> waiting{peer};
        for (int later = peer + 1; later < size; ++later) {
          if (later == rank || ahead.count(later) != 0) continue;
          if (auto early = try_get(store, key_of(later), std::chrono::milliseconds(1))) {
            ahead.emplace(later, std::move(*early));
          } else {
            waiting.push_back(later);
          }
        }
        return "rank " + std::to_string(rank) +
               ": connecting: " + std::to_string(peers - static_cast<int>(waiting.size())) + "/" +
               std::to_string(peers) + " peers published their records, waiting for rank(s) " +
               rank_list(waiting) + " (store key '" + key_of(waiting.front()) + "')";
      });
    }
    if (!bytes) {
      missing.push_back(peer);
      continue;
    }
    on_record(peer, std::move(*bytes));
  }
  return missing;
}

}  // namespace torchwan::transport
