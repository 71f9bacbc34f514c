#include "csrc/host_tier_step.h"

#include <algorithm>
#include <stdexcept>
#include <vector>

#include "csrc/argument_checks.h"
#include "csrc/exchange.h"
#include "csrc/hierarchical.h"

namespace torchwan::engine {

HostPlace host_place(const Topology& topology, int rank) {
  const Topology hosts = topology_from_groups(topology.host_of);
  const int host = hosts.region_of.at(static_cast<size_t>(rank));
  const std::vector<int>& members = hosts.regions[static_cast<size_t>(host)];
  const auto found = std::find(members.begin(), members.end(), rank);
  return {.position = static_cast<int>(found - members.begin()),
          .local_size = static_cast<int>(members.size()),
          .host = host};
}

RingLayout host_tier_layout(size_t count, DataType dtype, int local_size) {
  return balanced_ring_layout(count, element_size(dtype), local_size);
}

bool allreduce_takes_host_tier(const Topology& topology, const AlgorithmOverrides* algorithms,
                               size_t bytes) {
  // Shared memory only decides between algorithms on one host, never against the host tier.
  return choose_algorithm(Collective::kAllreduce,
                          {.bytes = bytes,
                           .size = topology.size(),
                           .topology = &topology,
                           .shared_memory = false},
                          algorithms) == Algorithm::kHosts;
}

void allreduce_between_hosts(const CollectiveContext& ctx, void* shard, size_t count,
                             DataType dtype, ReduceOp op) {
  require_reduction("allreduce", dtype, op);
  if (ctx.topology == nullptr || !has_host_tier(*ctx.topology)) {
    throw std::invalid_argument("allreduce between hosts: the group has no host tier");
  }
  const HostPlace mine = host_place(*ctx.topology, ctx.transport.rank());
  const RingLayout layout = host_tier_layout(count, dtype, mine.local_size);
  const size_t shard_bytes = layout.length[static_cast<size_t>(mine.position)];
  require_buffer("allreduce", shard, shard_bytes);
  // The ranks at this rank's position on every host, in host order, as host_allreduce pairs them.
  const Topology hosts = topology_from_groups(ctx.topology->host_of);
  std::vector<int> peers;
  for (const std::vector<int>& host : hosts.regions) {
    peers.push_back(host[static_cast<size_t>(mine.position)]);
  }
  Exchange ex(ctx, "allreduce");
  regional_across(ex, *ctx.topology, dtype, op)(peers, static_cast<uint8_t*>(shard),
                                                shard_bytes / element_size(dtype));
  ex.finish();
}

}  // namespace torchwan::engine
