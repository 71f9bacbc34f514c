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

// Caller-owned error-feedback residuals of one buffer: contiguous CPU fp32 tensors of the buffer's
// element count, zero at first (see engine::ErrorFeedback).
struct Residuals {
  at::Tensor contribution;
  at::Tensor reduction;
};

// Throws c10::ValueError unless `residuals` fit a buffer of `count` elements.
void check_residuals(const Residuals& residuals, int64_t count);

// In place on the contiguous host tensor `host` (fp16, bf16, fp32 or fp64): SUM over all ranks,
// through `config`'s codec on the wire, bit-identical on every rank; with `residuals`, error
// feedback.
void compressed_allreduce(const engine::CollectiveContext& context, at::Tensor& host,
                          const compression::CodecConfig& config,
                          const Residuals* residuals = nullptr);

}  // namespace torchwan::c10d_backend
