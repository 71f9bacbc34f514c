// All-to-all in its two forms: a list of per-peer tensors, and one tensor split along dim 0 with
// possibly uneven split sizes. Both become one uneven engine alltoallv over flat host buffers.
#include <c10/util/Exception.h>

#include <numeric>

#include "c10d_backend/process_group_wan.h"
#include "c10d_backend/signature.h"
#include "c10d_backend/staging.h"
#include "c10d_backend/tensor_types.h"
#include "csrc/collectives.h"

namespace torchwan {

using c10d_backend::Access;
using c10d_backend::Staging;

namespace {

// Byte offsets of consecutive blocks of the given byte lengths.
std::vector<size_t> offsets_of(const std::vector<size_t>& lengths) {
  std::vector<size_t> offsets(lengths.size(), 0);
  std::exclusive_scan(lengths.begin(), lengths.end(), offsets.begin(), size_t{0});
  return offsets;
}

// Per-rank row counts for alltoall_base: the given splits, or an even split when none are given.
std::vector<int64_t> split_rows(const std::vector<int64_t>& splits, const at::Tensor& tensor,
                                int size, const char* name, const char* what) {
  const int64_t rows = tensor.dim() == 0 ? 1 : tensor.size(0);
  if (splits.empty()) {
    TORCH_CHECK_VALUE(rows % size == 0, "torchwan ", name, ": the ", what, " has ", rows,
                      " rows along dim 0, not divisible by the world size ", size,
                      "; pass split sizes");
    return std::vector<int64_t>(static_cast<size_t>(size), rows / size);
  }
  TORCH_CHECK_VALUE(static_cast<int>(splits.size()) == size, "torchwan ", name, ": ", what,
                    " split sizes must have world size = ", size, " entries, got ", splits.size());
  for (const int64_t split : splits) {
    TORCH_CHECK_VALUE(split >= 0, "torchwan ", name, ": negative ", what, " split size ", split);
  }
  const int64_t sum = std::accumulate(splits.begin(), splits.end(), int64_t{0});
  TORCH_CHECK_VALUE(sum == rows, "torchwan ", name, ": ", what, " split sizes add up to ", sum,
                    " but the ", what, " has ", rows, " rows along dim 0");
  return splits;
}

std::vector<size_t> rows_to_bytes(const std::vector<int64_t>& rows, const at::Tensor& tensor) {
  const int64_t total_rows = tensor.dim() == 0 ? 1 : tensor.size(0);
  const size_t row_bytes = total_rows == 0 ? 0 : tensor.nbytes() / static_cast<size_t>(total_rows);
  std::vector<size_t> bytes;
  bytes.reserve(rows.size());
  for (const int64_t r : rows) bytes.push_back(static_cast<size_t>(r) * row_bytes);
  return bytes;
}

}  // namespace

c10::intrusive_ptr<c10d::Work> ProcessGroupWan::alltoall_base(
    at::Tensor& output, at::Tensor& input, std::vector<int64_t>& output_split_sizes,
    std::vector<int64_t>& input_split_sizes, const c10d::AllToAllOptions& opts) {
  constexpr const char* kName = "all_to_all_single";
  c10d_backend::engine_dtype(input.scalar_type(), kName);
  c10d_backend::check_same_dtype({output}, input.scalar_type(), kName);
  const auto send_rows = split_rows(input_split_sizes, input, size_, kName, "input");
  const auto recv_rows = split_rows(output_split_sizes, output, size_, kName, "output");
  if (input.dim() > 0 && output.dim() > 0 && input.size(0) > 0 && output.size(0) > 0) {
    TORCH_CHECK_VALUE(input.numel() / input.size(0) == output.numel() / output.size(0), "torchwan ",
                      kName, ": input rows and output rows differ in size (", input.sizes(), " vs ",
                      output.sizes(), ")");
  }
  const auto send_bytes = rows_to_bytes(send_rows, input);
  const auto recv_bytes = rows_to_bytes(recv_rows, output);
  auto staging = std::make_shared<Staging>(kName);
  staging->add(input, Access::kRead);
  staging->add(output, Access::kWrite);
  // Ranks legitimately send different amounts, so the signature carries no count; the engine
  // checks every sender's size against its receiver's.
  return submit(
      {c10d::OpType::ALLTOALL_BASE, kName, input.scalar_type(), 0}, opts.timeout, {output}, staging,
      [send_bytes, recv_bytes](const engine::CollectiveContext& context, const Staging& staged) {
        const auto send_offsets = offsets_of(send_bytes);
        const auto recv_offsets = offsets_of(recv_bytes);
        engine::alltoallv(context, staged.host(0).const_data_ptr(), send_offsets, send_bytes,
                          staged.host(1).mutable_data_ptr(), recv_offsets, recv_bytes);
      });
}

c10::intrusive_ptr<c10d::Work> ProcessGroupWan::alltoall(std::vector<at::Tensor>& outputs,
                                                         std::vector<at::Tensor>& inputs,
                                                         const c10d::AllToAllOptions& opts) {
  constexpr const char* kName = "all_to_all";
  TORCH_CHECK_VALUE(
      static_cast<int>(inputs.size()) == size_ && static_cast<int>(outputs.size()) == size_,
      "torchwan ", kName, ": needs world size = ", size_, " input and output tensors, got ",
      inputs.size(), " and ", outputs.size());
  const at::ScalarType type = inputs[0].scalar_type();
  c10d_backend::engine_dtype(type, kName);
  c10d_backend::check_same_dtype(inputs, type, kName);
  c10d_backend::check_same_dtype(outputs, type, kName);
  auto staging = std::make_shared<Staging>(kName);
  std::vector<size_t> send_bytes;
  std::vector<size_t> recv_bytes;
  for (const at::Tensor& input : inputs) {
    staging->add(input, Access::kRead);
    send_bytes.push_back(input.nbytes());
  }
  for (const at::Tensor& output : outputs) {
    staging->add(output, Access::kWrite);
    recv_bytes.push_back(output.nbytes());
  }
  const auto world = static_cast<size_t>(size_);
  return submit({c10d::OpType::ALLTOALL, kName, type, 0}, opts.timeout, outputs, staging,
                [send_bytes, recv_bytes, world](const engine::CollectiveContext& context,
                                                const Staging& staged) {
                  std::vector<at::Tensor> flat;
                  for (size_t i = 0; i < world; ++i) flat.push_back(staged.host(i).reshape({-1}));
                  const at::Tensor in = at::cat(flat);
                  const auto recv_offsets = offsets_of(recv_bytes);
                  const size_t total = recv_offsets.back() + recv_bytes.back();
                  at::Tensor out =
                      at::empty({static_cast<int64_t>(total)}, in.options().dtype(at::kByte));
                  engine::alltoallv(context, in.const_data_ptr(), offsets_of(send_bytes),
                                    send_bytes, out.mutable_data_ptr(), recv_offsets, recv_bytes);
                  for (size_t i = 0; i < world; ++i) {
                    at::Tensor target = staged.host(world + i);
                    const auto bytes = static_cast<int64_t>(recv_bytes[i]);
                    target.view({-1}).view(at::kByte).copy_(
                        out.narrow(0, static_cast<int64_t>(recv_offsets[i]), bytes));
                  }
                });
}

}  // namespace torchwan
