// Topology-aware allreduce: composes the flat algorithms, each run over a subgroup of the ranks
// (Exchange::Subgroup) in its own phase, so that the slow links between regions carry as little
// as possible and, for large buffers, all of them carry it at once.
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <vector>

#include "csrc/dtype.h"
#include "csrc/exchange.h"
#include "csrc/topology.h"

namespace torchwan::engine {

// In place: every rank ends with the reduction over all ranks, bit-identical on every rank.
// `topology` must be consistent and cover ex.size() ranks; ex must not be in a Subgroup scope.
// - Equal region sizes and at least kStripedAllreduceMinBytes: ring reduce-scatter inside each
//   region (m shards), then shard i is allreduced among the i-th members of all regions (one
//   group per shard, all in parallel over different WAN links), then ring allgather inside.
// - Otherwise (small buffers, or regions of unequal size, where shard i has no partner in a
//   smaller region): reduce to each region's lowest rank, allreduce among those leaders,
//   broadcast inside each region.
// The reduction order differs from the flat allreduce's (floating-point sums may differ in the
// last bits from it), but is the same for every rank's copy of an element.
void hierarchical_allreduce(Exchange& ex, const Topology& topology, uint8_t* data, size_t count,
                            DataType dtype, ReduceOp op);

class HostSharedMemory;
// The striped scheme over hosts instead of regions (topology.host_of: several hosts of equal size,
// more than one rank each): inside each host the reduce-scatter and the allgather go through
// `memory` (shared by the host's ranks; a host whose ranks cannot share it, or a null `memory`,
// uses the ring there), and each shard is allreduced between the hosts, every local rank carrying
// its own shard over its own connections. Where the hosts form several regions of equal size
// (several hosts each), that step goes through the regions in turn (host -> region -> world).
void host_allreduce(Exchange& ex, const Topology& topology, HostSharedMemory* memory, uint8_t* data,
                    size_t count, DataType dtype, ReduceOp op);

// Allreduces one shard among `peers` (global ranks in rank order, this rank among them), the
// ranks holding the same shard in every host or region. Called outside any Subgroup scope; it
// opens its own, in phase 1 (the phases 0 and 2 belong to the steps inside the host or region).
using ShardAllreduce =
    std::function<void(const std::vector<int>& peers, uint8_t* shard, size_t count)>;
// host_allreduce with the step between hosts given by the caller (the compressed allreduce
// compresses only that step).
void host_tier_allreduce(Exchange& ex, const Topology& topology, HostSharedMemory* memory,
                         uint8_t* data, size_t count, DataType dtype, ReduceOp op,
                         const ShardAllreduce& across);

// The step between hosts that host_allreduce takes: a flat allreduce of the shard among `peers`,
// or, where those peers' hosts form several regions of equal numbers of hosts, striped once more
// through the regions (host -> region -> world). Phase 1 for the step between hosts; phases 0 and
// 2 only for the steps inside a region, which pair ranks of different hosts.
ShardAllreduce regional_across(Exchange& ex, const Topology& topology, DataType dtype, ReduceOp op);

// Whether host_allreduce can serve `topology`: several hosts, all of the same size above one.
bool has_host_tier(const Topology& topology);
// Whether host_allreduce also goes through the regions: the hosts form several regions, each of
// more than one host and all of the same number.
bool hosts_compose_with_regions(const Topology& topology);

}  // namespace torchwan::engine
