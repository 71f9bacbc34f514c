// Per-collective counters of one process group, for torchwan.stats(): how many calls of each
// collective ran, how many failed, the bytes this rank contributed, the bytes copied between host
// and device for them (over PCIe) and the time spent from the start of the exchange to its end
// (queueing before it not included).
#pragma once

#include <chrono>
#include <cstdint>
#include <map>
#include <mutex>
#include <string>

namespace torchwan::c10d_backend {

struct CollectiveCounts {
  uint64_t calls = 0;
  uint64_t failures = 0;
  uint64_t bytes = 0;
  uint64_t pcie_bytes = 0;
  double seconds = 0;
};

class CollectiveStats {
 public:
  void record(const std::string& name, uint64_t bytes, uint64_t pcie_bytes,
              std::chrono::steady_clock::duration took, bool failed);
  std::map<std::string, CollectiveCounts> snapshot() const;

 private:
  mutable std::mutex mutex_;
  std::map<std::string, CollectiveCounts> counts_;
};

}  // namespace torchwan::c10d_backend
