#include <algorithm>
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

// Allreduce over the current subgroup, chosen by size as the flat allreduce chooses. Every member
// passes the same count, so all pick the same algorithm.
void subgroup_allreduce(Exchange& ex, uint8_t* data, size_t count, DataType dtype, ReduceOp op) {
  if (ex.size() < 2 || count == 0) return;
  const size_t element_bytes = element_size(dtype);
  if (count * element_bytes < kSmallAllreduceMaxBytes) {
    recursive_doubling_allreduce(ex, data, count, dtype, op);
  } else {
    ring_allreduce(ex, data, balanced_ring_layout(count, element_bytes, ex.size()), dtype, op);
  }
}

// `groups` are regions or hosts, `group` the one holding this rank at `position`. With `memory`,
// the group's ranks try to share it for the phases inside the group (all of them agree whether
// they can); without, or when they cannot, those phases run the ring.
void striped_allreduce(Exchange& ex, const std::vector<std::vector<int>>& groups,
                       const std::vector<int>& group, int position, HostSharedMemory* memory,
                       uint8_t* data, size_t count, DataType dtype, ReduceOp op) {
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
  {
    const auto shard = static_cast<size_t>(position);
    Exchange::Subgroup across(ex, shard_peers, kAcrossRegionsPhase);
    subgroup_allreduce(ex, data + layout.offset[shard], layout.length[shard] / element_bytes, dtype,
                       op);
  }
  Exchange::Subgroup inside(ex, group, kSpreadPhase);
  if (shared) {
    shared_memory_allgather(ex, *memory, data, layout);
  } else {
    ring_allgather(ex, data, layout);
  }
}

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
    subgroup_allreduce(ex, data, count, dtype, op);
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
    striped_allreduce(ex, topology.regions, region, position, nullptr, data, count, dtype, op);
  } else {
    leader_allreduce(ex, topology, region, position, data, count, dtype, op);
  }
}

bool has_host_tier(const Topology& topology) {
  if (topology.host_of.size() != static_cast<size_t>(topology.size())) return false;
  const Topology hosts = topology_from_groups(topology.host_of);
  return hosts.region_count() > 1 && hosts.uniform() && hosts.regions[0].size() > 1;
}

void host_allreduce(Exchange& ex, const Topology& topology, HostSharedMemory* memory, uint8_t* data,
                    size_t count, DataType dtype, ReduceOp op) {
  if (count == 0) return;
  const Topology hosts = topology_from_groups(topology.host_of);
  const std::vector<int>& host =
      hosts.regions[static_cast<size_t>(hosts.region_of[static_cast<size_t>(ex.rank())])];
  const auto position =
      static_cast<int>(std::find(host.begin(), host.end(), ex.rank()) - host.begin());
  striped_allreduce(ex, hosts.regions, host, position, memory, data, count, dtype, op);
}

}  // namespace torchwan::engine
