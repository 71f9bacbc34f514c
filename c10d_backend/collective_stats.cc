#include "c10d_backend/collective_stats.h"

namespace torchwan::c10d_backend {

void CollectiveStats::record(const std::string& name, uint64_t bytes, uint64_t pcie_bytes,
                             std::chrono::steady_clock::duration took, bool failed) {
  std::lock_guard<std::mutex> lock(mutex_);
  CollectiveCounts& counts = counts_[name];
  counts.calls += 1;
  counts.failures += failed ? 1 : 0;
  counts.bytes += bytes;
  counts.pcie_bytes += pcie_bytes;
  counts.seconds += std::chrono::duration<double>(took).count();
}

std::map<std::string, CollectiveCounts> CollectiveStats::snapshot() const {
  std::lock_guard<std::mutex> lock(mutex_);
  return counts_;
}

}  // namespace torchwan::c10d_backend
