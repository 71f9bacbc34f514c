// Which ranks share a region (a data centre, a site: cheap links inside, slow WAN links between),
// for the hierarchical collectives. A Topology is derived by pure functions from inputs that every
// rank holds identically (the exchanged list of region labels, or the exchanged RTT matrix), so
// every rank derives the same grouping without further agreement.
#pragma once

#include <span>
#include <string>
#include <vector>

namespace torchwan::engine {

struct Topology {
  // Members of each region in increasing rank order; regions ordered by their lowest rank.
  std::vector<std::vector<int>> regions;
  // Region index of every rank.
  std::vector<int> region_of;
  // The slowest round trip between two ranks in ms, when an RTT matrix was measured (0 when not):
  // the latency-bound algorithms use it to decide how large a message still counts as small.
  double max_rtt_ms = 0;
  // Host index of every rank, numbered by lowest rank (ranks with equal indices run on one machine
  // in one network namespace, so they can share memory and a NIC); empty when not known. Hosts
  // are independent of regions: a region may hold several hosts.
  std::vector<int> host_of;

  int size() const { return static_cast<int>(region_of.size()); }
  int region_count() const { return static_cast<int>(regions.size()); }
  // Whether the two views agree and are canonical (what the functions below build); a hand-made
  // Topology is checked with this before use.
  bool consistent() const;
  // Whether every region has the same number of ranks (the striped hierarchical allreduce needs
  // it: shard i of every region must have a partner in every other region).
  bool uniform() const;
  // Whether every rank is known to run on one host.
  bool one_host() const;
  // Whether some host is known to run more than one rank of the group.
  bool shares_hosts() const;
};

// Host indices from per-rank host identities: equal identities share a host, numbered by lowest
// rank (as regions are), so every rank derives the same indices from the same list.
std::vector<int> hosts_from_ids(std::span<const std::string> host_ids);

// The canonical Topology of an arbitrary grouping: ranks with equal `group_of` values share a
// region. Regions are renumbered by their lowest rank, so equal groupings give equal Topologies.
Topology topology_from_groups(std::span<const int> group_of);

// Ranks with the same label share a region. Throws std::invalid_argument for an empty list or an
// empty label.
Topology topology_from_labels(std::span<const std::string> labels);

struct RttClustering {
  // Two ranks are linked when their RTT is at most max(ratio * the smallest RTT between two
  // distinct ranks, floor_ms); regions are the connected components (single linkage). The ratio
  // separates LAN-like from WAN-like links whatever the absolute scale; the floor keeps a
  // data centre whose links are all sub-millisecond but uneven from being split. Being relative,
  // the rule cannot split ranks whose links are all alike (every pair 100 ms apart is one region;
  // the hierarchy would not help them anyway).
  double ratio = 5.0;
  double floor_ms = 5.0;
};

// Regions from a size x size matrix of RTTs in milliseconds (row-major: rtt_ms[i * size + j] is
// what rank i measured to rank j). The diagonal is ignored; each pair uses the mean of its two
// directions, so asymmetric measurements still give one answer; +infinity means unmeasured (never
// linked). Throws std::invalid_argument for a wrong length, a NaN or a negative value.
Topology topology_from_rtt(std::span<const double> rtt_ms, int size, RttClustering options = {});

// What the c10d layer calls with the exchanged inputs: the labels when every rank set one, the RTT
// clustering when none did (rtt_ms may then be empty only for a single rank). Throws
// std::invalid_argument, naming the ranks, when only some ranks set a label, so a misconfigured
// job fails identically on every rank.
Topology choose_topology(std::span<const std::string> labels, std::span<const double> rtt_ms,
                         RttClustering options = {});

}  // namespace torchwan::engine
