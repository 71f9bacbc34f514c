// Per-peer traffic counters of a transport: what users read in torchwan.stats() to see where the
// bytes of a job go. Counting is a few relaxed atomic additions per completed message, cheap
// enough to be always on.
#pragma once

#include <atomic>
#include <cstdint>
#include <memory>
#include <vector>

namespace torchwan::transport {

// What this rank exchanged with one peer: completed messages and their payload bytes as the
// transport carried them (sealed size when encrypted).
struct PeerTraffic {
  uint64_t bytes_sent = 0;
  uint64_t bytes_received = 0;
  uint64_t messages_sent = 0;
  uint64_t messages_received = 0;
};

class TrafficCounters {
 public:
  explicit TrafficCounters(int peers);

  void count_sent(int peer, uint64_t bytes);
  void count_received(int peer, uint64_t bytes);
  // A consistent-enough copy: each counter is read once; messages may complete in between.
  std::vector<PeerTraffic> snapshot() const;

 private:
  struct Counters {
    std::atomic<uint64_t> bytes_sent{0};
    std::atomic<uint64_t> bytes_received{0};
    std::atomic<uint64_t> messages_sent{0};
    std::atomic<uint64_t> messages_received{0};
  };
  std::vector<std::unique_ptr<Counters>> peers_;  // atomics cannot live in a resizable vector
};

}  // namespace torchwan::transport
