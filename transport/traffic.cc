#include "transport/traffic.h"

namespace torchwan::transport {

TrafficCounters::TrafficCounters(int peers) {
  peers_.reserve(static_cast<size_t>(peers));
  for (int i = 0; i < peers; ++i) peers_.push_back(std::make_unique<Counters>());
}

void TrafficCounters::count_sent(int peer, uint64_t bytes) {
  if (peer < 0 || static_cast<size_t>(peer) >= peers_.size()) return;
  Counters& counters = *peers_[static_cast<size_t>(peer)];
  counters.bytes_sent.fetch_add(bytes, std::memory_order_relaxed);
  counters.messages_sent.fetch_add(1, std::memory_order_relaxed);
}

void TrafficCounters::count_received(int peer, uint64_t bytes) {
  if (peer < 0 || static_cast<size_t>(peer) >= peers_.size()) return;
  Counters& counters = *peers_[static_cast<size_t>(peer)];
  counters.bytes_received.fetch_add(bytes, std::memory_order_relaxed);
  counters.messages_received.fetch_add(1, std::memory_order_relaxed);
}

std::vector<PeerTraffic> TrafficCounters::snapshot() const {
  std::vector<PeerTraffic> result;
  result.reserve(peers_.size());
  for (const auto& counters : peers_) {
    result.push_back({counters->bytes_sent.load(std::memory_order_relaxed),
                      counters->bytes_received.load(std::memory_order_relaxed),
                      counters->messages_sent.load(std::memory_order_relaxed),
                      counters->messages_received.load(std::memory_order_relaxed)});
  }
  return result;
}

}  // namespace torchwan::transport
