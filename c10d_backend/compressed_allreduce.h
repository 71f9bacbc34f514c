// Tensor side of the one compressed allreduce (csrc/compressed_allreduce.h): the codecs work on
// fp32, so other floating-point dtypes are summed through an fp32 copy. Serves the backend's
// `compression` option (inside allreduce) and torchwan.hooks (ProcessGroupWan::
// compressed_allreduce, defined in compressed_allreduce.cc, whose Work completes the hook's
// future).
#pragma once

#include <ATen/core/Tensor.h>

#include "csrc/collectives.h"
#include "csrc/compression/codec_types.h"

namespace torchwan::c10d_backend {

class Staging;

// Caller-owned error-feedback residuals of one buffer: contiguous fp32 tensors of the buffer's
// element count, on the buffer's CUDA device where the codecs run there (device_codecs_built()),
// else on the CPU; zero at first (see engine::ErrorFeedback).
struct Residuals {
  at::Tensor contribution;
  at::Tensor reduction;
};

// Whether this build runs the codecs of CUDA tensors on the GPU (c10d_backend/cuda_codec_steps.h):
// then such tensors stay on the device (Memory::kDevice); otherwise they are staged to the host.
bool device_codecs_built();

// Throws c10::ValueError unless `residuals` fit `tensor`: as many elements, on the right device.
void check_residuals(const Residuals& residuals, const at::Tensor& tensor);

// In place on the contiguous tensor `data` (fp16, bf16, fp32 or fp64) as `staging` provides it
// (host memory, or a CUDA device's with Memory::kDevice): SUM over all ranks, through `config`'s
// codec on the wire, bit-identical on every rank and to the host path; with `residuals`, error
// feedback. Counts its own host-device copies in `staging`.
void compressed_allreduce(const engine::CollectiveContext& context, at::Tensor& data,
                          Staging& staging, const compression::CodecConfig& config,
                          const Residuals* residuals = nullptr);

}  // namespace torchwan::c10d_backend
