#include <algorithm>
#include <stdexcept>
#include <vector>

#include "csrc/algorithm_tuning.h"
#include "csrc/algorithms.h"
#include "csrc/hierarchical.h"
#include "csrc/host_shared_memory.h"
#include "csrc/ring.h"
#include "csrc/shared_memory_algorithms.h"

namespace torchwan::engine {
namespace {

// Each phase has its own step range, so a fast rank already in the next phase can never have its
// messages matched by a peer still in the previous one.
constexpr uint32_t kInsideRegionPhase = 0;
constexpr uint32_t kAcrossRegionsPhase = 1;
constexpr uint32_t kSpreadPhase = 2;

// Allreduce over the current subgroup, chosen as a group of its size chooses its flat allreduce,
// with the group's slowest round trip: the subgroups that call this (one rank per host or region)
// span the slowest links. Every member passes the same count and round trip, so all pick the same
// algorithm.
void subgroup_allreduce(Exchange& ex, uint8_t* data, size_t count, DataType dtype, ReduceOp op,
                        double max_rtt_ms) {
  if (ex.size() < 2 || count == 0) return;
  flat_allreduce(ex, flat_allreduce_algorithm(count * element_size(dtype), ex.size(), max_rtt_ms),
                 data, count, dtype, op);
}

// `groups` are regions or hosts, `group` the one holding this rank at `position`. With `memory`,
// the group's ranks try to share it for the phases inside the group (all of them agree whether
// they can); without, or when they cannot, those phases run the ring. `across` allreduces this
// rank's shard among the ranks at the same position in every group.
void striped_allreduce(Exchange& ex, const std::vector<std::vector<int>>& groups,
                       const std::vector<int>& group, int position, HostSharedMemory* memory,
                       uint8_t* data, size_t count, DataType dtype, ReduceOp op,
                       const ShardAllreduce& across) {
  const size_t element_bytes = element_size(dtype);
  const RingLayout layout =
      balanced_ring_layout(count, element_bytes, static_cast<int>(group.size()));
  bool shared = false;
  {
    Exchange::Subgroup inside(ex, group, kInsideRegionPhase);
    shared = memory != nullptr && memory->ready(ex);
    if (shared) {
      shared_memory_reduce_scatter(ex, *memory, data, layout, dtype, op);
    } else {
      ring_reduce_scatter(ex, data, layout, dtype, op);
    }
  }
  // The owners of shard `position` in every group, in group order: the same list on each.
  std::vector<int> shard_peers;
  for (const std::vector<int>& other : groups) {
    shard_peers.push_back(other[static_cast<size_t>(position)]);
  }
  const auto shard = static_cast<size_t>(position);
  across(shard_peers, data + layout.offset[shard], layout.length[shard] / element_bytes);
  Exchange::Subgroup inside(ex, group, kSpreadPhase);
  if (shared) {
    shared_memory_allgather(ex, *memory, data, layout);
  } else {
    ring_allgather(ex, data, layout);
  }
}

// The allreduce between groups when nothing finer is known about the links between them.
ShardAllreduce flat_across(Exchange& ex, DataType dtype, ReduceOp op, double max_rtt_ms) {
  return [&ex, dtype, op, max_rtt_ms](const std::vector<int>& peers, uint8_t* shard, size_t count) {
    Exchange::Subgroup across(ex, peers, kAcrossRegionsPhase);
    subgroup_allreduce(ex, shard, count, dtype, op, max_rtt_ms);
  };
}

// The group of `groups` that holds `rank`, and the rank's position in it.
struct Placement {
  const std::vector<int>* group;
  int position;
};
Placement place(const std::vector<std::vector<int>>& groups, int rank) {
  for (const std::vector<int>& group : groups) {
    const auto found = std::find(group.begin(), group.end(), rank);
    if (found != group.end()) {
      return {&group, static_cast<int>(found - group.begin())};
    }
  }
  throw std::logic_error("hierarchical allreduce: rank in no group");
}

// The regions of `peers` (global ranks), numbered by position in `peers`.
Topology regions_among(const Topology& topology, const std::vector<int>& peers) {
  std::vector<int> region_of_peer;
  for (const int peer : peers) {
    region_of_peer.push_back(topology.region_of[static_cast<size_t>(peer)]);
  }
  return topology_from_groups(region_of_peer);
}

// Whether the striped scheme serves `groups`: several, all of the same size above one.
bool stripes_through(const Topology& groups) {
  return groups.region_count() > 1 && groups.region_count() < groups.size() && groups.uniform();
}

}  // namespace

// The allreduce between hosts, composed with regions (host -> region -> world): when the shard's
// peers (one rank per host) span several regions, each holding more than one of them and all the
// same number, the shard is striped once more, through the regions. There are only three phases,
// so the inner scheme reuses the host's: its reduce-scatter and allgather pair ranks on different
// hosts of one region (phases 0 and 2, where the host's own steps pair ranks of one host), the
// step between regions pairs ranks of different regions (phase 1). No pair of ranks meets in two
// scopes of one phase, so their messages can never be matched across scopes.
ShardAllreduce regional_across(Exchange& ex, const Topology& topology, DataType dtype,
                               ReduceOp op) {
  return [&ex, &topology, dtype, op](const std::vector<int>& peers, uint8_t* shard, size_t count) {
    const Topology regions = regions_among(topology, peers);
    if (!stripes_through(regions) || count * element_size(dtype) < kStripedAllreduceMinBytes) {
      flat_across(ex, dtype, op, topology.max_rtt_ms)(peers, shard, count);
      return;
    }
    std::vector<std::vector<int>> groups;  // the regions, as global ranks
    for (const std::vector<int>& region : regions.regions) {
      groups.emplace_back();
      for (const int index : region) groups.back().push_back(peers[static_cast<size_t>(index)]);
    }
    const Placement mine = place(groups, ex.rank());
    striped_allreduce(ex, groups, *mine.group, mine.position, nullptr, shard, count, dtype, op,
                      flat_across(ex, dtype, op, topology.max_rtt_ms));
  };
}

namespace {

void leader_allreduce(Exchange& ex, const Topology& topology, const std::vector<int>& region,
                      int position, uint8_t* data, size_t count, DataType dtype, ReduceOp op) {
  const size_t bytes = count * element_size(dtype);
  const bool has_peers_inside = region.size() > 1;
  if (has_peers_inside) {
    Exchange::Subgroup inside(ex, region, kInsideRegionPhase);
    if (bytes < kTreeReduceMaxBytes) {
      binomial_tree_reduce(ex, data, count, dtype, op, 0);
    } else {
      chain_reduce(ex, data, count, dtype, op, 0);
    }
  }
  if (position == 0) {
    std::vector<int> leaders;
    for (const std::vector<int>& other : topology.regions) leaders.push_back(other[0]);
    Exchange::Subgroup across(ex, leaders, kAcrossRegionsPhase);
    subgroup_allreduce(ex, data, count, dtype, op, topology.max_rtt_ms);
  }
  if (has_peers_inside) {
    Exchange::Subgroup inside(ex, region, kSpreadPhase);
    if (bytes < kTreeBroadcastMaxBytes) {
      binomial_tree_broadcast(ex, data, bytes, 0);
    } else {
      chain_broadcast(ex, data, bytes, 0);
    }
  }
}

}  // namespace

void hierarchical_allreduce(Exchange& ex, const Topology& topology, uint8_t* data, size_t count,
                            DataType dtype, ReduceOp op) {
  if (count == 0) return;
  const int rank = ex.rank();
  const std::vector<int>& region =
      topology.regions[static_cast<size_t>(topology.region_of[static_cast<size_t>(rank)])];
  const auto position =
      static_cast<int>(std::find(region.begin(), region.end(), rank) - region.begin());
  if (topology.uniform() && count * element_size(dtype) >= kStripedAllreduceMinBytes) {
    striped_allreduce(ex, topology.regions, region, position, nullptr, data, count, dtype, op,
                      flat_across(ex, dtype, op, topology.max_rtt_ms));
  } else {
    leader_allreduce(ex, topology, region, position, data, count, dtype, op);
  }
}

bool has_host_tier(const Topology& topology) {
  if (topology.host_of.size() != static_cast<size_t>(topology.size())) return false;
  return stripes_through(topology_from_groups(topology.host_of));
}

bool hosts_compose_with_regions(const Topology& topology) {
  if (!has_host_tier(topology)) return false;
  // The first rank of every host stands for its host (a host lies in one region).
  std::vector<int> host_leaders;
  for (const std::vector<int>& host : topology_from_groups(topology.host_of).regions) {
    host_leaders.push_back(host[0]);
  }
  return stripes_through(regions_among(topology, host_leaders));
}

void host_tier_allreduce(Exchange& ex, const Topology& topology, HostSharedMemory* memory,
                         uint8_t* data, size_t count, DataType dtype, ReduceOp op,
                         const ShardAllreduce& across) {
  if (count == 0) return;
  const Topology hosts = topology_from_groups(topology.host_of);
  const Placement mine = place(hosts.regions, ex.rank());
  striped_allreduce(ex, hosts.regions, *mine.group, mine.position, memory, data, count, dtype, op,
                    across);
}

void host_allreduce(Exchange& ex, const Topology& topology, HostSharedMemory* memory, uint8_t* data,
                    size_t count, DataType dtype, ReduceOp op) {
  host_tier_allreduce(ex, topology, memory, data, count, dtype, op,
                      regional_across(ex, topology, dtype, op));
}

}  // namespace torchwan::engine
