// The reducing collectives: allreduce (single and coalesced), reduce, and the three forms of
// reduce-scatter. AVG and PREMUL_SUM travel as SUM with the scaling done here, on host memory.
#include <c10/core/StreamGuard.h>
#include <c10/util/Exception.h>

#include <optional>

#include "c10d_backend/compressed_allreduce.h"
#include "c10d_backend/nccl_tier_allreduce.h"
#include "c10d_backend/process_group_wan.h"
#include "c10d_backend/signature.h"
#include "c10d_backend/staging.h"
#include "c10d_backend/tensor_types.h"
#include "csrc/collectives.h"

namespace torchwan {

using c10d_backend::Access;
using c10d_backend::ReduceScaling;
using c10d_backend::Staging;

namespace {

size_t elements(const at::Tensor& tensor) { return static_cast<size_t>(tensor.numel()); }

// Flattens host tensors into one new contiguous buffer (the engine reduces one buffer per call).
at::Tensor concatenate(const Staging& staging, size_t first, size_t count) {
  std::vector<at::Tensor> flat;
  flat.reserve(count);
  for (size_t i = first; i < first + count; ++i) flat.push_back(staging.host(i).reshape({-1}));
  return at::cat(flat);
}

// Copies consecutive slices of `flat` back into host tensors first .. first + count - 1.
void split_into(const at::Tensor& flat, const Staging& staging, size_t first, size_t count) {
  int64_t offset = 0;
  for (size_t i = first; i < first + count; ++i) {
    at::Tensor target = staging.host(i);
    target.view({-1}).copy_(flat.narrow(0, offset, target.numel()));
    offset += target.numel();
  }
}

}  // namespace

c10::intrusive_ptr<c10d::Work> ProcessGroupWan::allreduce(std::vector<at::Tensor>& tensors,
                                                          const c10d::AllreduceOptions& opts) {
  constexpr const char* kName = "all_reduce";
  const at::Tensor& tensor = c10d_backend::single_tensor(tensors, kName);
  if (tensor.is_sparse()) return sparse_allreduce(tensor, opts);
  const engine::DataType dtype = c10d_backend::engine_dtype(tensor.scalar_type(), kName);
  const engine::ReduceOp op =
      c10d_backend::engine_reduce_op(opts.reduceOp, tensor.scalar_type(), kName);
  const ReduceScaling scaling(opts.reduceOp, size_, kName);
  // Lossy by the user's choice (Options.compression); integers and other ops stay exact.
  const std::optional<compression::Codec> codec =
      options_.compression.applies(dtype, op, tensor.nbytes()) ? options_.compression.codec
                                                               : std::nullopt;
  // CUDA tensors whose host tier runs on NCCL (local_backend nccl or auto) stay on the GPU.
  c10::intrusive_ptr<c10d::Backend> nccl =
      nccl_tier_for(tensor, dtype, op, /*compressed=*/codec.has_value());
  auto staging = std::make_shared<Staging>(kName);
  // A compressed allreduce of a CUDA tensor encodes on the GPU: only payloads cross PCIe.
  const bool on_device = nccl || (codec && c10d_backend::device_codecs_built());
  staging->add(tensor, Access::kReadWrite,
               on_device ? c10d_backend::Memory::kDevice : c10d_backend::Memory::kHost);
  return submit(
      {c10d::OpType::ALLREDUCE, kName, tensor.scalar_type(), elements(tensor), opts.reduceOp.op_},
      opts.timeout, {tensor}, staging,
      [dtype, op, scaling, codec, nccl](const engine::CollectiveContext& context, Staging& staged) {
        at::Tensor host = staged.host(0);
        // On a device tensor (compression, the NCCL tier), everything runs on the comm stream.
        const c10::OptionalStreamGuard on_comm_stream(host.is_cuda() ? staged.stream()
                                                                     : std::nullopt);
        scaling.premultiply(host);
        if (nccl) {
          c10d_backend::nccl_tier_allreduce(context, *nccl, host, dtype, op, staged);
        } else if (codec) {
          c10d_backend::compressed_allreduce(context, host, staged, {.codec = *codec});
        } else {
          engine::allreduce(context, host.mutable_data_ptr(), elements(host), dtype, op);
        }
        scaling.finish(host);
      });
}

c10::intrusive_ptr<c10d::Work> ProcessGroupWan::allreduce_coalesced(
    std::vector<at::Tensor>& tensors, const c10d::AllreduceCoalescedOptions& opts) {
  constexpr const char* kName = "all_reduce_coalesced";
  TORCH_CHECK_VALUE(!tensors.empty(), "torchwan ", kName, ": needs at least one tensor");
  const at::ScalarType type = tensors[0].scalar_type();
  c10d_backend::check_same_dtype(tensors, type, kName);
  const engine::DataType dtype = c10d_backend::engine_dtype(type, kName);
  const engine::ReduceOp op = c10d_backend::engine_reduce_op(opts.reduceOp, type, kName);
  const ReduceScaling scaling(opts.reduceOp, size_, kName);
  auto staging = std::make_shared<Staging>(kName);
  size_t total = 0;
  for (const at::Tensor& tensor : tensors) {
    staging->add(tensor, Access::kReadWrite);
    total += elements(tensor);
  }
  const size_t count = tensors.size();
  return submit(
      {c10d::OpType::ALLREDUCE_COALESCED, kName, type, total, opts.reduceOp.op_}, opts.timeout,
      tensors, staging,
      [dtype, op, scaling, count](const engine::CollectiveContext& context, const Staging& staged) {
        at::Tensor flat = concatenate(staged, 0, count);
        scaling.premultiply(flat);
        engine::allreduce(context, flat.mutable_data_ptr(), elements(flat), dtype, op);
        scaling.finish(flat);
        split_into(flat, staged, 0, count);
      });
}

c10::intrusive_ptr<c10d::Work> ProcessGroupWan::reduce(std::vector<at::Tensor>& tensors,
                                                       const c10d::ReduceOptions& opts) {
  constexpr const char* kName = "reduce";
  const at::Tensor& tensor = c10d_backend::single_tensor(tensors, kName);
  const int root = static_cast<int>(opts.rootRank);
  check_root(root, kName);
  TORCH_CHECK_VALUE(opts.rootTensor == 0, "torchwan ", kName, ": rootTensor must be 0, got ",
                    opts.rootTensor);
  const engine::DataType dtype = c10d_backend::engine_dtype(tensor.scalar_type(), kName);
  const engine::ReduceOp op =
      c10d_backend::engine_reduce_op(opts.reduceOp, tensor.scalar_type(), kName);
  const ReduceScaling scaling(opts.reduceOp, size_, kName);
  const bool is_root = root == rank_;
  auto staging = std::make_shared<Staging>(kName);
  staging->add(tensor, is_root ? Access::kReadWrite : Access::kRead);
  return submit({c10d::OpType::REDUCE, kName, tensor.scalar_type(), elements(tensor),
                 opts.reduceOp.op_, root},
                opts.timeout, {tensor}, staging,
                [dtype, op, scaling, root, is_root](const engine::CollectiveContext& context,
                                                    const Staging& staged) {
                  at::Tensor host = staged.host(0);
                  // Only the root's tensor may change: other ranks premultiply a copy.
                  if (scaling.premultiplies() && !is_root) host = host.clone();
                  scaling.premultiply(host);
                  engine::reduce(context, host.mutable_data_ptr(), elements(host), dtype, op, root);
                  if (is_root) scaling.finish(host);
                });
}

c10::intrusive_ptr<c10d::Work> ProcessGroupWan::_reduce_scatter_base(
    at::Tensor& output, at::Tensor& input, const c10d::ReduceScatterOptions& opts) {
  constexpr const char* kName = "reduce_scatter_tensor";
  const at::ScalarType type = input.scalar_type();
  c10d_backend::check_same_dtype({output}, type, kName);
  c10d_backend::check_numel(input, output.numel() * size_, kName, "the input");
  const engine::DataType dtype = c10d_backend::engine_dtype(type, kName);
  const engine::ReduceOp op = c10d_backend::engine_reduce_op(opts.reduceOp, type, kName);
  const ReduceScaling scaling(opts.reduceOp, size_, kName);
  auto staging = std::make_shared<Staging>(kName);
  staging->add(input, Access::kRead);
  staging->add(output, Access::kWrite);
  return submit(
      {c10d::OpType::_REDUCE_SCATTER_BASE, kName, type, elements(output), opts.reduceOp.op_},
      opts.timeout, {output}, staging,
      [dtype, op, scaling](const engine::CollectiveContext& context, const Staging& staged) {
        at::Tensor in = staged.host(0);
        at::Tensor out = staged.host(1);
        if (scaling.premultiplies()) {
          in = in.clone();  // the caller's input stays as it was
          scaling.premultiply(in);
        }
        engine::reduce_scatter(context, in.const_data_ptr(), out.mutable_data_ptr(), elements(out),
                               dtype, op);
        scaling.finish(out);
      });
}

c10::intrusive_ptr<c10d::Work> ProcessGroupWan::reduce_scatter(
    std::vector<at::Tensor>& outputs, std::vector<std::vector<at::Tensor>>& inputs,
    const c10d::ReduceScatterOptions& opts) {
  constexpr const char* kName = "reduce_scatter";
  const at::Tensor& output = c10d_backend::single_tensor(outputs, kName);
  TORCH_CHECK_VALUE(inputs.size() == 1 && static_cast<int>(inputs[0].size()) == size_, "torchwan ",
                    kName, ": expects one input list of world size ", size_);
  const at::ScalarType type = output.scalar_type();
  c10d_backend::check_same_dtype(inputs[0], type, kName);
  for (const at::Tensor& input : inputs[0]) {
    c10d_backend::check_numel(input, output.numel(), kName, "an input tensor");
  }
  const engine::DataType dtype = c10d_backend::engine_dtype(type, kName);
  const engine::ReduceOp op = c10d_backend::engine_reduce_op(opts.reduceOp, type, kName);
  const ReduceScaling scaling(opts.reduceOp, size_, kName);
  auto staging = std::make_shared<Staging>(kName);
  for (const at::Tensor& input : inputs[0]) staging->add(input, Access::kRead);
  const size_t out_index = staging->add(output, Access::kWrite);
  return submit({c10d::OpType::REDUCE_SCATTER, kName, type, elements(output), opts.reduceOp.op_},
                opts.timeout, {output}, staging,
                [dtype, op, scaling, out_index](const engine::CollectiveContext& context,
                                                const Staging& staged) {
                  at::Tensor in = concatenate(staged, 0, out_index);
                  at::Tensor out = staged.host(out_index);
                  scaling.premultiply(in);
                  engine::reduce_scatter(context, in.const_data_ptr(), out.mutable_data_ptr(),
                                         elements(out), dtype, op);
                  scaling.finish(out);
                });
}

c10::intrusive_ptr<c10d::Work> ProcessGroupWan::reduce_scatter_tensor_coalesced(
    std::vector<at::Tensor>& outputs, std::vector<at::Tensor>& inputs,
    const c10d::ReduceScatterOptions& opts) {
  constexpr const char* kName = "reduce_scatter_tensor_coalesced";
  TORCH_CHECK_VALUE(!outputs.empty() && outputs.size() == inputs.size(), "torchwan ", kName,
                    ": needs as many inputs as outputs (at least one), got ", inputs.size(),
                    " and ", outputs.size());
  const at::ScalarType type = outputs[0].scalar_type();
  c10d_backend::check_same_dtype(outputs, type, kName);
  c10d_backend::check_same_dtype(inputs, type, kName);
  size_t total = 0;
  for (size_t i = 0; i < outputs.size(); ++i) {
    c10d_backend::check_numel(inputs[i], outputs[i].numel() * size_, kName, "an input tensor");
    total += elements(outputs[i]);
  }
  const engine::DataType dtype = c10d_backend::engine_dtype(type, kName);
  const engine::ReduceOp op = c10d_backend::engine_reduce_op(opts.reduceOp, type, kName);
  const ReduceScaling scaling(opts.reduceOp, size_, kName);
  auto staging = std::make_shared<Staging>(kName);
  for (const at::Tensor& input : inputs) staging->add(input, Access::kRead);
  for (const at::Tensor& output : outputs) staging->add(output, Access::kWrite);
  const size_t count = outputs.size();
  const int world = size_;
  return submit({c10d::OpType::COALESCED, kName, type, total, opts.reduceOp.op_}, opts.timeout,
                outputs, staging,
                [dtype, op, scaling, count, world](const engine::CollectiveContext& context,
                                                   const Staging& staged) {
                  // One reduce-scatter over all pairs: block r of the combined input is block r of
                  // every input side by side, so block r of the result is every output of rank r
                  // side by side.
                  std::vector<at::Tensor> blocks;
                  for (size_t i = 0; i < count; ++i) {
                    const at::Tensor& input = staged.host(i);
                    blocks.push_back(input.reshape({world, input.numel() / world}));
                  }
                  at::Tensor in = at::cat(blocks, 1).contiguous();
                  at::Tensor out = at::empty({in.size(1)}, in.options());
                  scaling.premultiply(in);
                  engine::reduce_scatter(context, in.const_data_ptr(), out.mutable_data_ptr(),
                                         elements(out), dtype, op);
                  scaling.finish(out);
                  split_into(out, staged, count, count);
                });
}

}  // namespace torchwan
