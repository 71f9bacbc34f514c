// Launch helpers shared by the CUDA codec files.
#include "csrc/compression/cuda_kernels.h"

namespace torchwan::compression::cuda {
namespace {

struct HeaderBytes {
  uint8_t bytes[kHeaderSize];
};

// The header travels as a kernel argument (copied at launch), so writing it needs neither a host
// buffer that outlives the call nor a synchronisation.
__global__ void write_header_kernel(HeaderBytes header, uint8_t* payload) {
  if (threadIdx.x < kHeaderSize) payload[threadIdx.x] = header.bytes[threadIdx.x];
}

}  // namespace

void launch_write_header(const uint8_t (&header)[kHeaderSize], uint8_t* payload,
                         cudaStream_t stream) {
  HeaderBytes argument;
  for (size_t i = 0; i < kHeaderSize; ++i) argument.bytes[i] = header[i];
  write_header_kernel<<<1, 64, 0, stream>>>(argument, payload);
}

unsigned grid_for(size_t work, unsigned threads) {
  // Enough CTAs to fill any current GPU several times over; grid-stride loops cover the rest.
  constexpr size_t kMaxBlocks = 65535;
  const size_t blocks = (work + threads - 1) / threads;
  return static_cast<unsigned>(blocks == 0 ? 1 : (blocks < kMaxBlocks ? blocks : kMaxBlocks));
}

}  // namespace torchwan::compression::cuda
