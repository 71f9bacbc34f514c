// What carries the steps inside a host (the host tier's reduce-scatter and allgather) for one
// allreduce, and the NCCL group that carries them for CUDA tensors when local_backend is "nccl"
// or "auto". The NCCL group is not built here: it is a torch.distributed.ProcessGroupNCCL that a
// factory (torchwan's Python registration, or a C++ caller) makes on the first CUDA allreduce that
// needs it, so this library never links against libtorch_cuda's NCCL symbols.
#pragma once

#include <functional>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <torch/csrc/distributed/c10d/Backend.hpp>

#include "csrc/dtype.h"

namespace torchwan::c10d_backend {

enum class LocalTier : uint8_t {
  kNone,        // the allreduce does not take the host tier at all
  kHostMemory,  // shared memory (or the ring) in host memory; device tensors are staged first
  kNccl,        // NCCL on the GPUs; only the rank's shard crosses PCIe for the step between hosts
};
const char* local_tier_name(LocalTier tier);

struct LocalTierQuery {
  std::string_view local_backend;  // "auto", "gloo", "none", "nccl"
  bool on_cuda = false;
  bool takes_host_tier = false;  // engine::allreduce_takes_host_tier for the call
  engine::DataType dtype = engine::DataType::kFloat32;
  engine::ReduceOp op = engine::ReduceOp::kSum;  // after AVG and PREMUL_SUM became SUM
  bool compressed = false;  // the call goes through a codec (Options.compression)
};

// The tier a call would use if the NCCL group, where it picks kNccl, can be had (the factory may
// still decline under "auto"). CPU tensors, dtypes and ops NCCL cannot reduce, and compressed
// calls (whose device codecs run the host tier in host memory) keep kHostMemory even under
// "nccl". Depends only on inputs every rank of a host has alike.
LocalTier choose_local_tier(const LocalTierQuery& query);

// What the factory is asked for: the NCCL group of this rank's host.
struct LocalTierRequest {
  int host = 0;        // hosts numbered by their lowest rank in the torchwan group
  int local_rank = 0;  // position among the host's ranks (rank order)
  int local_size = 1;
  int device_index = 0;   // the CUDA device of the tensor that asked
  bool required = false;  // local_backend "nccl": declining is an error, not a fallback
};
// Returns the host's NCCL group (local_rank of local_size), or null to keep the host-memory tier
// (only when !required). Every rank of the host calls it in the same collective, so a factory may
// exchange through the group's store to decide alike on all of them.
using LocalTierFactory = std::function<c10::intrusive_ptr<c10d::Backend>(const LocalTierRequest&)>;

// The group's NCCL tier: asked for once, then kept (or known to be unavailable) for the group's
// life. Thread-safe.
class NcclTier {
 public:
  explicit NcclTier(std::string group_name) : group_name_(std::move(group_name)) {}
  void set_factory(LocalTierFactory factory);
  // The host's NCCL group, made on the first call; null when the factory declined. Throws a
  // ValueError when `request.required` and there is no factory or it declined.
  c10::intrusive_ptr<c10d::Backend> backend(const LocalTierRequest& request);
  // "not created", "nccl" or "host memory" (the factory declined).
  std::string state() const;
  // Shuts the NCCL group down (quietly) and forgets the factory.
  void shutdown();

 private:
  const std::string group_name_;
  mutable std::mutex mutex_;
  LocalTierFactory factory_;
  // Empty until asked; then the group, or null when declined.
  std::optional<c10::intrusive_ptr<c10d::Backend>> backend_;
};

}  // namespace torchwan::c10d_backend
