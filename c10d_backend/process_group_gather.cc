// The collectives that move data without reducing it: broadcast, the all-gathers, gather and
// scatter. Lists of per-rank tensors travel as one flat host buffer per call.
#include <c10/util/Exception.h>

#include "c10d_backend/process_group_wan.h"
#include "c10d_backend/signature.h"
#include "c10d_backend/staging.h"
#include "c10d_backend/tensor_types.h"
#include "csrc/collectives.h"

namespace torchwan {

using c10d_backend::Access;
using c10d_backend::Staging;

namespace {

size_t elements(const at::Tensor& tensor) { return static_cast<size_t>(tensor.numel()); }

// Copies row i of `rows` (one row per rank) into host tensor first + i.
void scatter_rows(const at::Tensor& rows, const Staging& staging, size_t first, size_t count) {
  for (size_t i = 0; i < count; ++i) {
    at::Tensor target = staging.host(first + i);
    target.view({-1}).copy_(rows[static_cast<int64_t>(i)]);
  }
}

at::Tensor stack_rows(const Staging& staging, size_t first, size_t count) {
  std::vector<at::Tensor> rows;
  rows.reserve(count);
  for (size_t i = first; i < first + count; ++i) rows.push_back(staging.host(i).reshape({-1}));
  return at::stack(rows);
}

// Checks a per-rank list of tensors: `size` of them, each with the input's dtype and numel.
void check_rank_list(const std::vector<at::Tensor>& list, int size, const at::Tensor& like,
                     const char* name, const char* what) {
  TORCH_CHECK_VALUE(static_cast<int>(list.size()) == size, "torchwan ", name, ": the ", what,
                    " list must hold world size = ", size, " tensors, got ", list.size());
  c10d_backend::check_same_dtype(list, like.scalar_type(), name);
  for (const at::Tensor& tensor : list) {
    c10d_backend::check_numel(tensor, like.numel(), name, "a tensor of the list");
  }
}

}  // namespace

c10::intrusive_ptr<c10d::Work> ProcessGroupWan::broadcast(std::vector<at::Tensor>& tensors,
                                                          const c10d::BroadcastOptions& opts) {
  constexpr const char* kName = "broadcast";
  const at::Tensor& tensor = c10d_backend::single_tensor(tensors, kName);
  const int root = static_cast<int>(opts.rootRank);
  check_root(root, kName);
  TORCH_CHECK_VALUE(opts.rootTensor == 0, "torchwan ", kName, ": rootTensor must be 0, got ",
                    opts.rootTensor);
  c10d_backend::engine_dtype(tensor.scalar_type(), kName);
  auto staging = std::make_shared<Staging>(kName);
  staging->add(tensor, root == rank_ ? Access::kRead : Access::kWrite);
  return submit(
      {c10d::OpType::BROADCAST, kName, tensor.scalar_type(), elements(tensor), std::nullopt, root},
      opts.timeout, {tensor}, staging,
      [root](const engine::CollectiveContext& context, const Staging& staged) {
        const at::Tensor& host = staged.host(0);
        engine::broadcast(context, host.mutable_data_ptr(), host.nbytes(), root);
      });
}

c10::intrusive_ptr<c10d::Work> ProcessGroupWan::_allgather_base(
    at::Tensor& output, at::Tensor& input, const c10d::AllgatherOptions& opts) {
  constexpr const char* kName = "all_gather_into_tensor";
  c10d_backend::engine_dtype(input.scalar_type(), kName);
  c10d_backend::check_same_dtype({output}, input.scalar_type(), kName);
  c10d_backend::check_numel(output, input.numel() * size_, kName, "the output");
  auto staging = std::make_shared<Staging>(kName);
  staging->add(input, Access::kRead);
  staging->add(output, Access::kWrite);
  return submit({c10d::OpType::_ALLGATHER_BASE, kName, input.scalar_type(), elements(input)},
                opts.timeout, {output}, staging,
                [](const engine::CollectiveContext& context, const Staging& staged) {
                  const at::Tensor& in = staged.host(0);
                  engine::allgather(context, in.const_data_ptr(), staged.host(1).mutable_data_ptr(),
                                    in.nbytes());
                });
}

c10::intrusive_ptr<c10d::Work> ProcessGroupWan::allgather(
    std::vector<std::vector<at::Tensor>>& outputs, std::vector<at::Tensor>& inputs,
    const c10d::AllgatherOptions& opts) {
  constexpr const char* kName = "all_gather";
  const at::Tensor& input = c10d_backend::single_tensor(inputs, kName);
  c10d_backend::engine_dtype(input.scalar_type(), kName);
  TORCH_CHECK_VALUE(outputs.size() == 1, "torchwan ", kName, ": expects one output list, got ",
                    outputs.size());
  check_rank_list(outputs[0], size_, input, kName, "output");
  auto staging = std::make_shared<Staging>(kName);
  staging->add(input, Access::kRead);
  for (const at::Tensor& output : outputs[0]) staging->add(output, Access::kWrite);
  const auto world = static_cast<size_t>(size_);
  return submit(
      {c10d::OpType::ALLGATHER, kName, input.scalar_type(), elements(input)}, opts.timeout,
      outputs[0], staging,
      [world](const engine::CollectiveContext& context, const Staging& staged) {
        const at::Tensor& in = staged.host(0);
        at::Tensor rows = at::empty({static_cast<int64_t>(world), in.numel()}, in.options());
        engine::allgather(context, in.const_data_ptr(), rows.mutable_data_ptr(), in.nbytes());
        scatter_rows(rows, staged, 1, world);
      });
}

c10::intrusive_ptr<c10d::Work> ProcessGroupWan::allgather_into_tensor_coalesced(
    std::vector<at::Tensor>& outputs, std::vector<at::Tensor>& inputs,
    const c10d::AllgatherOptions& opts) {
  constexpr const char* kName = "all_gather_into_tensor_coalesced";
  TORCH_CHECK_VALUE(!inputs.empty() && outputs.size() == inputs.size(), "torchwan ", kName,
                    ": needs as many outputs as inputs (at least one), got ", outputs.size(),
                    " and ", inputs.size());
  const at::ScalarType type = inputs[0].scalar_type();
  c10d_backend::engine_dtype(type, kName);
  c10d_backend::check_same_dtype(inputs, type, kName);
  c10d_backend::check_same_dtype(outputs, type, kName);
  size_t total = 0;
  for (size_t i = 0; i < inputs.size(); ++i) {
    c10d_backend::check_numel(outputs[i], inputs[i].numel() * size_, kName, "an output tensor");
    total += elements(inputs[i]);
  }
  auto staging = std::make_shared<Staging>(kName);
  for (const at::Tensor& input : inputs) staging->add(input, Access::kRead);
  for (const at::Tensor& output : outputs) staging->add(output, Access::kWrite);
  const size_t count = inputs.size();
  const int world = size_;
  return submit({c10d::OpType::COALESCED, kName, type, total}, opts.timeout, outputs, staging,
                [count, world](const engine::CollectiveContext& context, const Staging& staged) {
                  // One all-gather of every input side by side; row r of the result then holds
                  // every input of rank r, which is block r of every output.
                  std::vector<at::Tensor> flat;
                  for (size_t i = 0; i < count; ++i) flat.push_back(staged.host(i).reshape({-1}));
                  const at::Tensor in = at::cat(flat);
                  at::Tensor rows = at::empty({world, in.numel()}, in.options());
                  engine::allgather(context, in.const_data_ptr(), rows.mutable_data_ptr(),
                                    in.nbytes());
                  int64_t offset = 0;
                  for (size_t i = 0; i < count; ++i) {
                    const int64_t n = flat[i].numel();
                    staged.host(count + i).view({world, n}).copy_(rows.narrow(1, offset, n));
                    offset += n;
                  }
                });
}

c10::intrusive_ptr<c10d::Work> ProcessGroupWan::gather(
    std::vector<std::vector<at::Tensor>>& outputs, std::vector<at::Tensor>& inputs,
    const c10d::GatherOptions& opts) {
  constexpr const char* kName = "gather";
  const at::Tensor& input = c10d_backend::single_tensor(inputs, kName);
  const int root = static_cast<int>(opts.rootRank);
  check_root(root, kName);
  c10d_backend::engine_dtype(input.scalar_type(), kName);
  const bool is_root = root == rank_;
  auto staging = std::make_shared<Staging>(kName);
  staging->add(input, Access::kRead);
  std::vector<at::Tensor> results;
  if (is_root) {
    TORCH_CHECK_VALUE(outputs.size() == 1, "torchwan ", kName,
                      ": the root expects one output list, got ", outputs.size());
    check_rank_list(outputs[0], size_, input, kName, "output");
    for (const at::Tensor& output : outputs[0]) staging->add(output, Access::kWrite);
    results = outputs[0];
  } else {
    TORCH_CHECK_VALUE(outputs.empty() || (outputs.size() == 1 && outputs[0].empty()), "torchwan ",
                      kName, ": only the root (rank ", root, ") takes an output list; rank ", rank_,
                      " got one");
  }
  const auto world = static_cast<size_t>(size_);
  return submit(
      {c10d::OpType::GATHER, kName, input.scalar_type(), elements(input), std::nullopt, root},
      opts.timeout, results, staging,
      [world, root, is_root](const engine::CollectiveContext& context, const Staging& staged) {
        const at::Tensor& in = staged.host(0);
        at::Tensor rows;
        if (is_root) rows = at::empty({static_cast<int64_t>(world), in.numel()}, in.options());
        engine::gather(context, in.const_data_ptr(), is_root ? rows.mutable_data_ptr() : nullptr,
                       in.nbytes(), root);
        if (is_root) scatter_rows(rows, staged, 1, world);
      });
}

c10::intrusive_ptr<c10d::Work> ProcessGroupWan::gather_into_tensor(
    at::Tensor& output, at::Tensor& input, const c10d::GatherOptions& opts) {
  constexpr const char* kName = "gather_into_tensor";
  const int root = static_cast<int>(opts.rootRank);
  check_root(root, kName);
  c10d_backend::engine_dtype(input.scalar_type(), kName);
  const bool is_root = root == rank_;
  auto staging = std::make_shared<Staging>(kName);
  staging->add(input, Access::kRead);
  if (is_root) {
    c10d_backend::check_same_dtype({output}, input.scalar_type(), kName);
    c10d_backend::check_numel(output, input.numel() * size_, kName, "the output");
    staging->add(output, Access::kWrite);
  }
  return submit(
      {c10d::OpType::GATHER, kName, input.scalar_type(), elements(input), std::nullopt, root},
      opts.timeout, {output}, staging,
      [root, is_root](const engine::CollectiveContext& context, const Staging& staged) {
        const at::Tensor& in = staged.host(0);
        engine::gather(context, in.const_data_ptr(),
                       is_root ? staged.host(1).mutable_data_ptr() : nullptr, in.nbytes(), root);
      });
}

c10::intrusive_ptr<c10d::Work> ProcessGroupWan::scatter(
    std::vector<at::Tensor>& outputs, std::vector<std::vector<at::Tensor>>& inputs,
    const c10d::ScatterOptions& opts) {
  constexpr const char* kName = "scatter";
  const at::Tensor& output = c10d_backend::single_tensor(outputs, kName);
  const int root = static_cast<int>(opts.rootRank);
  check_root(root, kName);
  c10d_backend::engine_dtype(output.scalar_type(), kName);
  const bool is_root = root == rank_;
  auto staging = std::make_shared<Staging>(kName);
  if (is_root) {
    TORCH_CHECK_VALUE(inputs.size() == 1, "torchwan ", kName,
                      ": the root expects one input list, got ", inputs.size());
    check_rank_list(inputs[0], size_, output, kName, "input");
    for (const at::Tensor& input : inputs[0]) staging->add(input, Access::kRead);
  } else {
    TORCH_CHECK_VALUE(inputs.empty() || (inputs.size() == 1 && inputs[0].empty()), "torchwan ",
                      kName, ": only the root (rank ", root, ") takes an input list; rank ", rank_,
                      " got one");
  }
  const size_t out_index = staging->add(output, Access::kWrite);
  return submit(
      {c10d::OpType::SCATTER, kName, output.scalar_type(), elements(output), std::nullopt, root},
      opts.timeout, {output}, staging,
      [root, is_root, out_index](const engine::CollectiveContext& context, const Staging& staged) {
        const at::Tensor& out = staged.host(out_index);
        at::Tensor rows;
        if (is_root) rows = stack_rows(staged, 0, out_index);
        engine::scatter(context, is_root ? rows.const_data_ptr() : nullptr, out.mutable_data_ptr(),
                        out.nbytes(), root);
      });
}

}  // namespace torchwan
