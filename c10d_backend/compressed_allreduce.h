// Tensor side of the backend's compressed allreduce (csrc/compressed_allreduce.h): the codecs work
// on fp32, so other floating-point dtypes are summed through an fp32 copy.
#pragma once

#include <ATen/core/Tensor.h>

#include "csrc/collectives.h"
#include "csrc/compression/codec_types.h"

namespace torchwan::c10d_backend {

// In place on the contiguous host tensor `host` (fp16, bf16, fp32 or fp64): SUM over all ranks,
// through `codec` on the wire, bit-identical on every rank.
void compressed_allreduce(const engine::CollectiveContext& context, at::Tensor& host,
                          compression::Codec codec);

}  // namespace torchwan::c10d_backend
