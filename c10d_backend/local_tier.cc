#include "c10d_backend/local_tier.h"

#include <c10/util/Exception.h>

#include <array>
#include <utility>

namespace torchwan::c10d_backend {
namespace {

// The dtypes and ops torch's ProcessGroupNCCL reduces as the engine does.
bool nccl_reduces(engine::DataType dtype, engine::ReduceOp op) {
  switch (op) {
    case engine::ReduceOp::kSum:
    case engine::ReduceOp::kProduct:
    case engine::ReduceOp::kMin:
    case engine::ReduceOp::kMax:
      break;
    default:
      return false;  // NCCL has no bitwise reductions
  }
  switch (dtype) {
    case engine::DataType::kUInt8:
    case engine::DataType::kInt8:
    case engine::DataType::kInt32:
    case engine::DataType::kInt64:
    case engine::DataType::kFloat16:
    case engine::DataType::kBFloat16:
    case engine::DataType::kFloat32:
    case engine::DataType::kFloat64:
      return true;
    default:
      return false;  // bool, int16, complex and float8 have no (or no exact) NCCL reduction
  }
}

}  // namespace

const char* local_tier_name(LocalTier tier) {
  // In the enum's order.
  constexpr std::array<const char*, 3> kNames = {"none", "host memory", "nccl"};
  return kNames.at(static_cast<size_t>(tier));
}

LocalTier choose_local_tier(const LocalTierQuery& query) {
  if (!query.takes_host_tier) return LocalTier::kNone;
  const bool nccl_asked = query.local_backend == "nccl" || query.local_backend == "auto";
  if (!nccl_asked || !query.on_cuda || query.compressed || !nccl_reduces(query.dtype, query.op)) {
    return LocalTier::kHostMemory;
  }
  return LocalTier::kNccl;
}

void NcclTier::set_factory(LocalTierFactory factory) {
  const std::lock_guard<std::mutex> lock(mutex_);
  factory_ = std::move(factory);
}

c10::intrusive_ptr<c10d::Backend> NcclTier::backend(const LocalTierRequest& request) {
  const std::lock_guard<std::mutex> lock(mutex_);
  if (!backend_) {
    TORCH_CHECK_VALUE(factory_ || !request.required, "torchwan: group '", group_name_,
                      "': local_backend 'nccl' (TORCHWAN_LOCAL_BACKEND) needs an NCCL group for "
                      "the ranks of each host, which torchwan's Python registration makes; a "
                      "group created from C++ must be given a factory (set_local_tier_factory)");
    backend_ = factory_ ? factory_(request) : c10::intrusive_ptr<c10d::Backend>();
    // Asked once: the factory (it may hold a Python callable) is not needed any more.
    factory_ = nullptr;
    TORCH_CHECK_VALUE(*backend_ || !request.required, "torchwan: group '", group_name_,
                      "': local_backend 'nccl' (TORCHWAN_LOCAL_BACKEND): no NCCL group was made "
                      "for host ",
                      request.host);
  }
  return *backend_;
}

std::string NcclTier::state() const {
  const std::lock_guard<std::mutex> lock(mutex_);
  if (!backend_) return "not created";
  return *backend_ ? "nccl" : "host memory";
}

void NcclTier::shutdown() {
  c10::intrusive_ptr<c10d::Backend> backend;
  {
    const std::lock_guard<std::mutex> lock(mutex_);
    factory_ = nullptr;
    if (backend_) backend = std::exchange(*backend_, {});
  }
  if (!backend) return;
  try {
    backend->shutdown();
  } catch (const std::exception&) {
    // Quiet, like the group's own shutdown: the NCCL group is released either way.
  }
}

}  // namespace torchwan::c10d_backend
