// all_gather_coalesced: several inputs per rank, gathered into one list per rank
// (output_lists[r][i] receives input i of rank r), in one all-gather of every input side by side.
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

// The checks Gloo makes: one list per rank, each with a tensor of input i's dtype and shape at
// position i.
void check_output_lists(const std::vector<std::vector<at::Tensor>>& output_lists,
                        const std::vector<at::Tensor>& inputs, int world, const char* name) {
  TORCH_CHECK_VALUE(static_cast<int>(output_lists.size()) == world, "torchwan ", name,
                    ": needs one output list per rank (world size ", world, "), got ",
                    output_lists.size());
  for (size_t rank = 0; rank < output_lists.size(); ++rank) {
    const std::vector<at::Tensor>& list = output_lists[rank];
    TORCH_CHECK_VALUE(list.size() == inputs.size(), "torchwan ", name, ": output list ", rank,
                      " holds ", list.size(), " tensors, expected one per input (", inputs.size(),
                      ")");
    c10d_backend::check_same_dtype(list, inputs[0].scalar_type(), name);
    for (size_t i = 0; i < list.size(); ++i) {
      TORCH_CHECK_VALUE(list[i].sizes() == inputs[i].sizes(), "torchwan ", name, ": output ", i,
                        " of list ", rank, " has shape ", list[i].sizes(), ", input ", i, " has ",
                        inputs[i].sizes());
    }
  }
}

}  // namespace

c10::intrusive_ptr<c10d::Work> ProcessGroupWan::allgather_coalesced(
    std::vector<std::vector<at::Tensor>>& output_lists, std::vector<at::Tensor>& inputs,
    const c10d::AllgatherOptions& opts) {
  constexpr const char* kName = "all_gather_coalesced";
  TORCH_CHECK_VALUE(!inputs.empty(), "torchwan ", kName, ": needs at least one input tensor");
  const at::ScalarType type = inputs[0].scalar_type();
  c10d_backend::engine_dtype(type, kName);
  c10d_backend::check_same_dtype(inputs, type, kName);
  check_output_lists(output_lists, inputs, size_, kName);
  size_t total = 0;
  auto staging = std::make_shared<Staging>(kName);
  for (const at::Tensor& input : inputs) {
    staging->add(input, Access::kRead);
    total += static_cast<size_t>(input.numel());
  }
  std::vector<at::Tensor> results;
  for (const std::vector<at::Tensor>& list : output_lists) {
    for (const at::Tensor& output : list) {
      staging->add(output, Access::kWrite);
      results.push_back(output);
    }
  }
  const size_t count = inputs.size();
  const int world = size_;
  return submit(
      {c10d::OpType::ALLGATHER_COALESCED, kName, type, total}, opts.timeout, results, staging,
      [count, world](const engine::CollectiveContext& context, const Staging& staged) {
        std::vector<at::Tensor> flat;
        for (size_t i = 0; i < count; ++i) flat.push_back(staged.host(i).reshape({-1}));
        const at::Tensor in = at::cat(flat);
        at::Tensor rows = at::empty({world, in.numel()}, in.options());
        engine::allgather(context, in.const_data_ptr(), rows.mutable_data_ptr(), in.nbytes());
        // Row r holds every input of rank r side by side: they go to output list r.
        for (int rank = 0; rank < world; ++rank) {
          int64_t offset = 0;
          for (size_t i = 0; i < count; ++i) {
            const int64_t n = flat[i].numel();
            const size_t output = count + static_cast<size_t>(rank) * count + i;
            staged.host(output).view({-1}).copy_(rows[rank].narrow(0, offset, n));
            offset += n;
          }
        }
      });
}

}  // namespace torchwan
