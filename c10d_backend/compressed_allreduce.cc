#include "c10d_backend/compressed_allreduce.h"

#include <ATen/ATen.h>
#include <c10/util/Exception.h>

#include <memory>
#include <optional>

#include "c10d_backend/process_group_wan.h"
#include "c10d_backend/signature.h"
#include "c10d_backend/staging.h"
#include "c10d_backend/tensor_types.h"
#include "csrc/compressed_allreduce.h"
#include "csrc/compression/codec_table.h"

namespace torchwan::c10d_backend {
namespace {

std::span<float> floats(const at::Tensor& tensor) {
  return {tensor.data_ptr<float>(), static_cast<size_t>(tensor.numel())};
}

}  // namespace

void check_residuals(const Residuals& residuals, int64_t count) {
  for (const at::Tensor* residual : {&residuals.contribution, &residuals.reduction}) {
    TORCH_CHECK_VALUE(residual->defined() && residual->device().is_cpu() &&
                          residual->scalar_type() == at::kFloat && residual->is_contiguous(),
                      "torchwan compressed allreduce: residuals must be contiguous CPU float32 "
                      "tensors");
    TORCH_CHECK_VALUE(residual->numel() == count, "torchwan compressed allreduce: a residual has ",
                      residual->numel(), " elements, the tensor ", count);
  }
}

void compressed_allreduce(const engine::CollectiveContext& context, at::Tensor& host,
                          const compression::CodecConfig& config, const Residuals* residuals) {
  const auto count = static_cast<size_t>(host.numel());
  std::optional<engine::ErrorFeedback> feedback;
  if (residuals != nullptr) {
    feedback = engine::ErrorFeedback{floats(residuals->contribution), floats(residuals->reduction)};
  }
  const engine::ErrorFeedback* feedback_pointer = feedback ? &*feedback : nullptr;
  if (host.scalar_type() == at::kFloat) {
    engine::compressed_allreduce(context, host.mutable_data_ptr<float>(), count, config, 0,
                                 feedback_pointer);
    return;
  }
  // fp64 is summed in fp32 too: the rounding that adds is far below the codec's own error.
  at::Tensor work = host.to(at::kFloat).contiguous();
  engine::compressed_allreduce(context, work.mutable_data_ptr<float>(), count, config, 0,
                               feedback_pointer);
  host.copy_(work);
}

}  // namespace torchwan::c10d_backend

namespace torchwan {

c10::intrusive_ptr<c10d::Work> ProcessGroupWan::compressed_allreduce(
    at::Tensor& tensor, const compression::CodecConfig& config, const c10d::ReduceOp& reduce_op,
    const c10d_backend::Residuals* residuals) {
  constexpr const char* kName = "compressed_all_reduce";
  TORCH_CHECK_VALUE(
      at::isFloatingType(tensor.scalar_type()) && tensor.is_contiguous() && !tensor.is_sparse(),
      "torchwan ", kName, ": needs a dense contiguous floating-point tensor, got ",
      tensor.scalar_type());
  TORCH_CHECK_VALUE(reduce_op == c10d::ReduceOp::SUM || reduce_op == c10d::ReduceOp::AVG,
                    "torchwan ", kName, ": only SUM and AVG");
  const bool needs_feedback = compression::describe(config.codec).needs_error_feedback;
  TORCH_CHECK_VALUE(residuals != nullptr || !needs_feedback, "torchwan ", kName, ": codec ",
                    compression::codec_name(config.codec), " needs error feedback: pass residuals");
  std::optional<c10d_backend::Residuals> owned;
  if (residuals != nullptr) {
    c10d_backend::check_residuals(*residuals, tensor.numel());
    owned = *residuals;  // holds the residual tensors until the operation has run
  }
  const c10d_backend::ReduceScaling scaling(reduce_op, size_, kName);
  auto staging = std::make_shared<c10d_backend::Staging>(kName);
  staging->add(tensor, c10d_backend::Access::kReadWrite);
  return submit({c10d::OpType::ALLREDUCE, kName, tensor.scalar_type(),
                 static_cast<uint64_t>(tensor.numel()), reduce_op.op_},
                c10d::kUnsetTimeout, {tensor}, staging,
                [config, scaling, owned = std::move(owned)](
                    const engine::CollectiveContext& context, const c10d_backend::Staging& staged) {
                  at::Tensor host = staged.host(0);
                  c10d_backend::compressed_allreduce(context, host, config,
                                                     owned ? &*owned : nullptr);
                  scaling.finish(host);
                });
}

}  // namespace torchwan
