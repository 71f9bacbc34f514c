#include "csrc/topology.h"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <limits>
#include <map>
#include <numeric>
#include <stdexcept>

namespace torchwan::engine {
namespace {

// Union-find over ranks, joining toward the lower root so the result does not depend on the order
// in which links are added.
class Components {
 public:
  explicit Components(int size) : parent_(static_cast<size_t>(size)) {
    std::iota(parent_.begin(), parent_.end(), 0);
  }
  int find(int rank) {
    while (parent_[static_cast<size_t>(rank)] != rank) {
      int& parent = parent_[static_cast<size_t>(rank)];
      parent = parent_[static_cast<size_t>(parent)];  // path halving
      rank = parent;
    }
    return rank;
  }
  void join(int a, int b) {
    a = find(a);
    b = find(b);
    if (a != b) parent_[static_cast<size_t>(std::max(a, b))] = std::min(a, b);
  }

 private:
  std::vector<int> parent_;
};

}  // namespace

bool Topology::consistent() const {
  size_t members = 0;
  for (size_t region = 0; region < regions.size(); ++region) {
    const std::vector<int>& ranks = regions[region];
    if (ranks.empty() || !std::is_sorted(ranks.begin(), ranks.end())) return false;
    if (region > 0 && regions[region - 1][0] >= ranks[0]) return false;
    for (int rank : ranks) {
      if (rank < 0 || rank >= size() ||
          region_of[static_cast<size_t>(rank)] != static_cast<int>(region)) {
        return false;
      }
    }
    members += ranks.size();
  }
  return members == region_of.size();
}

bool Topology::uniform() const {
  return std::all_of(regions.begin(), regions.end(), [&](const std::vector<int>& region) {
    return region.size() == regions[0].size();
  });
}

bool Topology::one_host() const {
  return !host_of.empty() && static_cast<int>(host_of.size()) == size() &&
         std::all_of(host_of.begin(), host_of.end(), [](int host) { return host == 0; });
}

bool Topology::shares_hosts() const {
  std::vector<int> sorted = host_of;
  std::sort(sorted.begin(), sorted.end());
  return std::adjacent_find(sorted.begin(), sorted.end()) != sorted.end();
}

std::vector<int> hosts_from_ids(std::span<const std::string> host_ids) {
  std::map<std::string, int> index_of_id;
  std::vector<int> host_of;
  host_of.reserve(host_ids.size());
  for (const std::string& id : host_ids) {
    const auto next = static_cast<int>(index_of_id.size());
    host_of.push_back(index_of_id.try_emplace(id, next).first->second);
  }
  return host_of;
}

Topology topology_from_groups(std::span<const int> group_of) {
  Topology topology;
  std::map<int, int> region_of_group;
  for (size_t rank = 0; rank < group_of.size(); ++rank) {
    const auto [entry, added] =
        region_of_group.try_emplace(group_of[rank], topology.region_count());
    if (added) topology.regions.emplace_back();
    topology.regions[static_cast<size_t>(entry->second)].push_back(static_cast<int>(rank));
    topology.region_of.push_back(entry->second);
  }
  return topology;
}

Topology topology_from_labels(std::span<const std::string> labels) {
  if (labels.empty()) throw std::invalid_argument("topology: no region labels");
  std::map<std::string, int> group_of_label;
  std::vector<int> group_of;
  for (size_t rank = 0; rank < labels.size(); ++rank) {
    if (labels[rank].empty()) {
      throw std::invalid_argument(fmt::format("topology: rank {} has an empty region label", rank));
    }
    group_of.push_back(
        group_of_label.try_emplace(labels[rank], static_cast<int>(rank)).first->second);
  }
  return topology_from_groups(group_of);
}

Topology topology_from_rtt(std::span<const double> rtt_ms, int size, RttClustering options) {
  if (size <= 0 || rtt_ms.size() != static_cast<size_t>(size) * static_cast<size_t>(size)) {
    throw std::invalid_argument(
        fmt::format("topology: an RTT matrix for {0} ranks needs {0}x{0} entries, got {1}", size,
                    rtt_ms.size()));
  }
  const auto n = static_cast<size_t>(size);
  for (size_t i = 0; i < rtt_ms.size(); ++i) {
    if (i / n != i % n && (std::isnan(rtt_ms[i]) || rtt_ms[i] < 0)) {
      throw std::invalid_argument(fmt::format("topology: invalid RTT {} ms from rank {} to rank {}",
                                              rtt_ms[i], i / n, i % n));
    }
  }
  // Delay is only ever added (a peer still busy with an earlier round, scheduling), never taken
  // away, so the smaller of the two directions' measurements is the better estimate of the link.
  auto pair_rtt = [&](size_t i, size_t j) {
    return std::min(rtt_ms[i * n + j], rtt_ms[j * n + i]);
  };
  double smallest = std::numeric_limits<double>::infinity();
  for (size_t i = 0; i < n; ++i) {
    for (size_t j = i + 1; j < n; ++j) smallest = std::min(smallest, pair_rtt(i, j));
  }
  // With nothing measured there is no scale to compare against: only the floor applies.
  const double threshold = std::isfinite(smallest)
                               ? std::max(options.ratio * smallest, options.floor_ms)
                               : options.floor_ms;
  Components components(size);
  for (size_t i = 0; i < n; ++i) {
    for (size_t j = i + 1; j < n; ++j) {
      const double rtt = pair_rtt(i, j);
      if (std::isfinite(rtt) && rtt <= threshold)
        components.join(static_cast<int>(i), static_cast<int>(j));
    }
  }
  std::vector<int> group_of;
  for (int rank = 0; rank < size; ++rank) group_of.push_back(components.find(rank));
  Topology topology = topology_from_groups(group_of);
  for (size_t i = 0; i < n; ++i) {
    for (size_t j = i + 1; j < n; ++j) {
      const double rtt = pair_rtt(i, j);
      if (std::isfinite(rtt)) topology.max_rtt_ms = std::max(topology.max_rtt_ms, rtt);
    }
  }
  return topology;
}

Topology choose_topology(std::span<const std::string> labels, std::span<const double> rtt_ms,
                         RttClustering options) {
  std::string labelled;
  std::string unlabelled;
  for (size_t rank = 0; rank < labels.size(); ++rank) {
    std::string& list = labels[rank].empty() ? unlabelled : labelled;
    list += fmt::format("{}{}", list.empty() ? "" : ",", rank);
  }
  if (!labelled.empty() && !unlabelled.empty()) {
    throw std::invalid_argument(
        fmt::format("topology: ranks {} set a region label but ranks {} did not; set it on every "
                    "rank or on none",
                    labelled, unlabelled));
  }
  if (!labelled.empty()) return topology_from_labels(labels);
  const int size = static_cast<int>(labels.size());
  if (size == 1 && rtt_ms.empty()) return topology_from_groups(std::vector<int>{0});
  return topology_from_rtt(rtt_ms, size, options);
}

}  // namespace torchwan::engine
