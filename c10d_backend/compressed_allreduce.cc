#include "c10d_backend/compressed_allreduce.h"

#include <ATen/ATen.h>
#include <c10/core/StreamGuard.h>
#include <c10/util/Exception.h>

#include <memory>
#include <optional>

#include "c10d_backend/process_group_wan.h"
#include "c10d_backend/signature.h"
#include "c10d_backend/staging.h"
#include "c10d_backend/tensor_types.h"
#include "csrc/compressed_allreduce.h"
#include "csrc/compression/codec_table.h"

#ifdef TORCHWAN_C10D_CUDA_CODECS
#include "c10d_backend/cuda_codec_steps.h"
#endif

namespace torchwan::c10d_backend {
namespace {

std::span<float> floats(const at::Tensor& tensor) {
  return {tensor.data_ptr<float>(), static_cast<size_t>(tensor.numel())};
}

}  // namespace

void check_residuals(const Residuals& residuals, const at::Tensor& tensor) {
  const int64_t count = tensor.numel();
  // Device residuals are updated by the device codecs; anywhere else they would be staged whole
  // every call.
  const c10::Device device =
      tensor.is_cuda() && device_codecs_built() ? tensor.device() : c10::Device(c10::kCPU);
  for (const at::Tensor* residual : {&residuals.contribution, &residuals.reduction}) {
    TORCH_CHECK_VALUE(residual->defined() && residual->device() == device &&
                          residual->scalar_type() == at::kFloat && residual->is_contiguous(),
                      "torchwan compressed allreduce: residuals must be contiguous float32 "
                      "tensors on ",
                      device, " for a tensor on ", tensor.device());
    TORCH_CHECK_VALUE(residual->numel() == count, "torchwan compressed allreduce: a residual has ",
                      residual->numel(), " elements, the tensor ", count);
  }
}

bool device_codecs_built() {
#ifdef TORCHWAN_C10D_CUDA_CODECS
  return true;
#else
  return false;
#endif
}

namespace {

// `data` (contiguous, host or device as `steps` expects) through the engine, in fp32.
void run(const engine::CollectiveContext& context, at::Tensor& data,
         const compression::CodecConfig& config, const Residuals* residuals,
         engine::CodecSteps* steps) {
  const auto count = static_cast<size_t>(data.numel());
  std::optional<engine::ErrorFeedback> feedback;
  if (residuals != nullptr) {
    feedback = engine::ErrorFeedback{floats(residuals->contribution), floats(residuals->reduction)};
  }
  const engine::ErrorFeedback* feedback_pointer = feedback ? &*feedback : nullptr;
  if (data.scalar_type() == at::kFloat) {
    engine::compressed_allreduce(context, data.mutable_data_ptr<float>(), count, config, 0,
                                 feedback_pointer, steps);
    return;
  }
  // fp64 is summed in fp32 too: the rounding that adds is far below the codec's own error.
  at::Tensor work = data.to(at::kFloat).contiguous();
  engine::compressed_allreduce(context, work.mutable_data_ptr<float>(), count, config, 0,
                               feedback_pointer, steps);
  data.copy_(work);
}

#ifdef TORCHWAN_C10D_CUDA_CODECS
// `data` on a CUDA device: the codecs run there, on the comm stream, and only payloads cross
// PCIe. The host tier sums through shared memory, so there the data is staged to the host whole.
void run_on_device(const engine::CollectiveContext& context, at::Tensor& data, Staging& staging,
                   const compression::CodecConfig& config, const Residuals* residuals) {
  const c10::Stream stream = *staging.stream();
  const c10::StreamGuard on_comm_stream(stream);
  if (engine::compressed_allreduce_uses_host_tier(context, static_cast<size_t>(data.numel()))) {
    at::Tensor host = data.to(at::kCPU);
    std::optional<Residuals> host_residuals;
    if (residuals != nullptr) {
      host_residuals =
          Residuals{residuals->contribution.to(at::kCPU), residuals->reduction.to(at::kCPU)};
    }
    run(context, host, config, host_residuals ? &*host_residuals : nullptr, nullptr);
    data.copy_(host);
    uint64_t copied = 2 * data.nbytes();
    if (residuals != nullptr) {
      residuals->contribution.copy_(host_residuals->contribution);
      residuals->reduction.copy_(host_residuals->reduction);
      copied += 4 * residuals->contribution.nbytes();
    }
    staging.count_pcie_bytes(copied);
    return;
  }
  CudaCodecSteps steps(stream);
  run(context, data, config, residuals, &steps);
  staging.count_pcie_bytes(steps.pcie_bytes());
}
#endif

}  // namespace

void compressed_allreduce(const engine::CollectiveContext& context, at::Tensor& data,
                          [[maybe_unused]] Staging& staging, const compression::CodecConfig& config,
                          const Residuals* residuals) {
#ifdef TORCHWAN_C10D_CUDA_CODECS
  if (data.is_cuda()) {
    run_on_device(context, data, staging, config, residuals);
    return;
  }
#endif
  run(context, data, config, residuals, nullptr);
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
    c10d_backend::check_residuals(*residuals, tensor);
    owned = *residuals;  // holds the residual tensors until the operation has run
  }
  const c10d_backend::ReduceScaling scaling(reduce_op, size_, kName);
  auto staging = std::make_shared<c10d_backend::Staging>(kName);
  staging->add(tensor, c10d_backend::Access::kReadWrite,
               c10d_backend::device_codecs_built() ? c10d_backend::Memory::kDevice
                                                   : c10d_backend::Memory::kHost);
  return submit({c10d::OpType::ALLREDUCE, kName, tensor.scalar_type(),
                 static_cast<uint64_t>(tensor.numel()), reduce_op.op_},
                c10d::kUnsetTimeout, {tensor}, staging,
                [config, scaling, owned = std::move(owned)](
                    const engine::CollectiveContext& context, c10d_backend::Staging& staged) {
                  at::Tensor data = staged.host(0);
                  // Device data is scaled on the comm stream too.
                  const c10::OptionalStreamGuard on_comm_stream(data.is_cuda() ? staged.stream()
                                                                               : std::nullopt);
                  c10d_backend::compressed_allreduce(context, data, staged, config,
                                                     owned ? &*owned : nullptr);
                  scaling.finish(data);
                });
}

}  // namespace torchwan
