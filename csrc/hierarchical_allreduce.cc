#include <algorithm>
#include <vector>

#include "csrc/algorithm_tuning.h"
#include "csrc/algorithms.h"
#include "csrc/hierarchical.h"
#include "csrc/ring.h"

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

void striped_allreduce(Exchange& ex, const Topology& topology, const std::vector<int>& region,
                       int position, uint8_t* data, size_t count, DataType dtype, ReduceOp op) {
  const size_t element_bytes = element_size(dtype);
  const RingLayout layout =
      balanced_ring_layout(count, element_bytes, static_cast<int>(region.size()));
  {
    Exchange::Subgroup inside(ex, region, kInsideRegionPhase);
    ring_reduce_scatter(ex, data, layout, dtype, op);
  }
  // The owners of shard `position` in every region, in region order: the same list on each.
  std::vector<int> shard_peers;
  for (const std::vector<int>& other : topology.regions) {
    shard_peers.push_back(other[static_cast<size_t>(position)]);
  }
  {
    const auto shard = static_cast<size_t>(position);
    Exchange::Subgroup across(ex, shard_peers, kAcrossRegionsPhase);
    subgroup_allreduce(ex, data + layout.offset[shard], layout.length[shard] / element_bytes, dtype,
                       op);
  }
  Exchange::Subgroup inside(ex, region, kSpreadPhase);
  ring_allgather(ex, data, layout);
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
    striped_allreduce(ex, topology, region, position, data, count, dtype, op);
  } else {
    leader_allreduce(ex, topology, region, position, data, count, dtype, op);
  }
}

}  // namespace torchwan::engine
