#include "c10d_backend/compressed_allreduce.h"

#include <ATen/ATen.h>

#include "csrc/compressed_allreduce.h"

namespace torchwan::c10d_backend {

void compressed_allreduce(const engine::CollectiveContext& context, at::Tensor& host,
                          compression::Codec codec) {
  const compression::CodecConfig config{.codec = codec};
  const auto count = static_cast<size_t>(host.numel());
  if (host.scalar_type() == at::kFloat) {
    engine::compressed_allreduce(context, host.mutable_data_ptr<float>(), count, config);
    return;
  }
  // fp64 is summed in fp32 too: the rounding that adds is far below the codec's own error.
  at::Tensor work = host.to(at::kFloat).contiguous();
  engine::compressed_allreduce(context, work.mutable_data_ptr<float>(), count, config);
  host.copy_(work);
}

}  // namespace torchwan::c10d_backend
