// Which tier carries an allreduce's steps inside a host, and the NCCL group for CUDA tensors.
#include <c10/util/Exception.h>

#include "c10d_backend/local_tier.h"
#include "c10d_backend/process_group_wan.h"
#include "c10d_backend/tensor_types.h"
#include "csrc/host_tier_step.h"

namespace torchwan {

using c10d_backend::LocalTier;

namespace {

c10d_backend::LocalTierQuery query_for(const WanOptions& options, const engine::Topology& topology,
                                       bool on_cuda, engine::DataType dtype, engine::ReduceOp op,
                                       size_t bytes, bool compressed) {
  return {
      .local_backend = options.topology.local_backend,
      .on_cuda = on_cuda,
      .takes_host_tier = engine::allreduce_takes_host_tier(topology, &options.algorithms, bytes),
      .dtype = dtype,
      .op = op,
      .compressed = compressed};
}

}  // namespace

void ProcessGroupWan::set_local_tier_factory(c10d_backend::LocalTierFactory factory) {
  nccl_tier_->set_factory(std::move(factory));
}

LocalTier ProcessGroupWan::local_tier_for(bool on_cuda, at::ScalarType type, int64_t numel,
                                          const c10d::ReduceOp& reduce_op) const {
  constexpr const char* kName = "local_tier_for";
  TORCH_CHECK_VALUE(numel >= 0, "torchwan ", kName, ": numel must not be negative, got ", numel);
  const engine::DataType dtype = c10d_backend::engine_dtype(type, kName);
  const engine::ReduceOp op = c10d_backend::engine_reduce_op(reduce_op, type, kName);
  const size_t bytes = static_cast<size_t>(numel) * engine::element_size(dtype);
  const bool compressed = options_.compression.applies(dtype, op, bytes);
  return c10d_backend::choose_local_tier(
      query_for(options_, topology_.topology, on_cuda, dtype, op, bytes, compressed));
}

c10::intrusive_ptr<c10d::Backend> ProcessGroupWan::nccl_tier_for(const at::Tensor& tensor,
                                                                 engine::DataType dtype,
                                                                 engine::ReduceOp op,
                                                                 bool compressed) {
  const LocalTier tier = c10d_backend::choose_local_tier(query_for(
      options_, topology_.topology, tensor.is_cuda(), dtype, op, tensor.nbytes(), compressed));
  if (tier != LocalTier::kNccl) return {};
  const engine::HostPlace place = engine::host_place(topology_.topology, rank_);
  return nccl_tier_->backend({.host = place.host,
                              .local_rank = place.position,
                              .local_size = place.local_size,
                              .device_index = tensor.device().index(),
                              .required = options_.topology.local_backend == "nccl"});
}

}  // namespace torchwan
