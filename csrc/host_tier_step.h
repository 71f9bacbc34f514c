// The host tier's step between hosts on its own, for a local tier that runs the steps inside the
// host itself (the c10d backend's NCCL tier reduce-scatters and allgathers on the GPUs). Each
// rank passes the shard of the host tier's layout that it holds after the reduce-scatter inside
// its host; the ranks holding the same shard on every host allreduce it over the group's
// transport, exactly as host_allreduce's phase 1 does. Ranks of a host whose local steps run in
// host memory (host_allreduce) and ranks whose local steps run elsewhere meet in this step
// unchanged, so each host may pick its local tier alone.
#pragma once

#include <cstddef>

#include "csrc/algorithm_table.h"
#include "csrc/collectives.h"
#include "csrc/dtype.h"
#include "csrc/ring.h"
#include "csrc/topology.h"

namespace torchwan::engine {

// Where this rank's host holds it: the host's ranks in rank order and this rank's position there.
struct HostPlace {
  int position = 0;
  int local_size = 1;
  int host = 0;  // hosts numbered by their lowest rank
};
HostPlace host_place(const Topology& topology, int rank);

// How an allreduce of `count` elements is cut into one shard per local rank inside a host: the
// layout host_allreduce uses (so that both local tiers reduce the same shard between hosts).
RingLayout host_tier_layout(size_t count, DataType dtype, int local_size);

// Whether an allreduce of `bytes` in a group of `topology` takes the host tier (the rule the engine
// applies when it runs it; `algorithms` may be null). Identical on every rank of the group.
bool allreduce_takes_host_tier(const Topology& topology, const AlgorithmOverrides* algorithms,
                               size_t bytes);

// The step between hosts of an allreduce of `count` elements: `shard` holds this rank's shard of
// host_tier_layout(count, ...), reduced inside its host; it ends reduced over every host. Checks
// the call's signature like the other collectives.
void allreduce_between_hosts(const CollectiveContext& ctx, void* shard, size_t count,
                             DataType dtype, ReduceOp op);

}  // namespace torchwan::engine
