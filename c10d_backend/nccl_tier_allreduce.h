// The host tier of an allreduce with its steps inside the host on the GPUs: NCCL reduce-scatters
// the tensor among the host's ranks, each rank copies only its shard to the host and allreduces it
// with the ranks holding the same shard on the other hosts (the engine's step between hosts, over
// the group's transport), then NCCL allgathers the shards back. PCIe carries 2/m of the tensor
// instead of all of it twice, and the host's GPUs reduce at NVLink or PCIe peer speed.
#pragma once

#include <ATen/ATen.h>

#include <torch/csrc/distributed/c10d/Backend.hpp>

#include "csrc/collectives.h"
#include "csrc/dtype.h"

namespace torchwan::c10d_backend {

class Staging;

// In place on `data`, a contiguous CUDA tensor, run on the collective thread with the comm stream
// current (everything is queued there or on NCCL's stream, ordered through the current stream).
// `local` is the host's NCCL group (local rank = this rank's position in its host). Results are
// those of the host-memory tier: the same shards, reduced in a different order inside the host.
void nccl_tier_allreduce(const engine::CollectiveContext& context, c10d::Backend& local,
                         at::Tensor& data, engine::DataType dtype, engine::ReduceOp op,
                         Staging& staged);

}  // namespace torchwan::c10d_backend
