#include "c10d_backend/nccl_tier_allreduce.h"

#include <c10/util/Exception.h>

#include <algorithm>
#include <stdexcept>
#include <string>
#include <vector>

#include "c10d_backend/staging.h"
#include "csrc/host_tier_step.h"

namespace torchwan::c10d_backend {
namespace {

c10d::ReduceOp nccl_op(engine::ReduceOp op) {
  switch (op) {
    case engine::ReduceOp::kSum:
      return c10d::ReduceOp::SUM;
    case engine::ReduceOp::kProduct:
      return c10d::ReduceOp::PRODUCT;
    case engine::ReduceOp::kMin:
      return c10d::ReduceOp::MIN;
    case engine::ReduceOp::kMax:
      return c10d::ReduceOp::MAX;
    default:
      break;
  }
  // choose_local_tier keeps every other op on the host-memory tier.
  throw std::logic_error(std::string("torchwan: the NCCL host tier cannot reduce with ") +
                         engine::reduce_op_name(op));
}

// NCCL's reduce-scatter needs equal blocks; the host tier's layout may differ by an element, so
// each shard gets a block of the widest shard's length (the tail of a shorter one is padding,
// reduced with the rest and never read).
struct Blocks {
  std::vector<int64_t> offset;  // elements, in the tensor
  std::vector<int64_t> length;  // elements
  int64_t width = 0;            // elements per block
  // Whether the tensor is already the blocks (every shard as wide as the widest).
  bool in_place() const {
    return std::all_of(length.begin(), length.end(), [this](int64_t n) { return n == width; });
  }
};

Blocks blocks_of(size_t count, engine::DataType dtype, int local_size) {
  const engine::RingLayout layout = engine::host_tier_layout(count, dtype, local_size);
  const auto element = static_cast<int64_t>(engine::element_size(dtype));
  Blocks blocks;
  for (size_t i = 0; i < layout.length.size(); ++i) {
    blocks.offset.push_back(static_cast<int64_t>(layout.offset[i]) / element);
    blocks.length.push_back(static_cast<int64_t>(layout.length[i]) / element);
    blocks.width = std::max(blocks.width, blocks.length.back());
  }
  return blocks;
}

void wait(const c10::intrusive_ptr<c10d::Work>& work) {
  // For NCCL work: the current (comm) stream waits for NCCL's stream; the host does not block.
  work->wait();
}

}  // namespace

void nccl_tier_allreduce(const engine::CollectiveContext& context, c10d::Backend& local,
                         at::Tensor& data, engine::DataType dtype, engine::ReduceOp op,
                         Staging& staged) {
  const auto count = static_cast<size_t>(data.numel());
  const Blocks blocks = blocks_of(count, dtype, local.getSize());
  const auto position = static_cast<size_t>(local.getRank());
  at::Tensor flat = data.view({-1});
  at::Tensor padded = flat;
  if (!blocks.in_place()) {
    padded = at::empty({blocks.width * local.getSize()}, flat.options());
    for (size_t i = 0; i < blocks.length.size(); ++i) {
      padded.narrow(0, static_cast<int64_t>(i) * blocks.width, blocks.length[i])
          .copy_(flat.narrow(0, blocks.offset[i], blocks.length[i]));
    }
  }
  at::Tensor block = at::empty({blocks.width}, flat.options());
  c10d::ReduceScatterOptions scatter_options;
  scatter_options.reduceOp = nccl_op(op);
  wait(local._reduce_scatter_base(block, padded, scatter_options));

  // Only this rank's shard crosses PCIe, both ways, for the step between hosts.
  at::Tensor shard = block.narrow(0, 0, blocks.length[position]);
  at::Tensor host = shard.to(at::kCPU);  // waits for the reduce-scatter
  staged.count_pcie_bytes(2 * host.nbytes());
  engine::allreduce_between_hosts(context, host.mutable_data_ptr(), count, dtype, op);
  shard.copy_(host);

  wait(local._allgather_base(padded, block, c10d::AllgatherOptions{}));
  if (!padded.is_same(flat)) {
    for (size_t i = 0; i < blocks.length.size(); ++i) {
      flat.narrow(0, blocks.offset[i], blocks.length[i])
          .copy_(padded.narrow(0, static_cast<int64_t>(i) * blocks.width, blocks.length[i]));
    }
  }
}

}  // namespace torchwan::c10d_backend
