// CUDA entry points: the same argument checks and header as codec.cc, then the kernels.
#include "csrc/compression/cuda_codec.h"

#include <string>

#include "csrc/compression/codec.h"
#include "csrc/compression/codec_table.h"
#include "csrc/compression/cuda_buffer.h"
#include "csrc/compression/cuda_kernels.h"

namespace torchwan::compression::cuda {
namespace {

[[noreturn]] void fail(const std::string& what) {
  throw CompressionError("torchwan compression: " + what);
}

void check_aligned(const void* pointer, const char* name) {
  if (reinterpret_cast<uintptr_t>(pointer) % 4 != 0) {
    fail(std::string(name) + " pointer must be 4-byte aligned");
  }
}

// The codec's CUDA launchers; every row has them when the library was built with CUDA.
const CudaKernels& kernels_of(Codec codec) {
  const CodecDescriptor& descriptor = describe(codec);
  if (descriptor.cuda == nullptr) fail(std::string("no CUDA kernels for ") + descriptor.name);
  return *descriptor.cuda;
}

size_t encode_impl(const CodecConfig& config, const float* input, float* residual, size_t count,
                   uint8_t* output, size_t output_capacity, cudaStream_t stream) {
  const EncodePlan plan = plan_encode(config, count, output_capacity);
  check_aligned(output, "output");
  uint8_t header_bytes[kHeaderSize];
  write_header(plan.header, header_bytes);
  launch_write_header(header_bytes, output, stream);
  kernels_of(plan.params.codec)
      .encode(plan.params, config.seed, input, residual, count, output, plan.layout, stream);
  check(cudaGetLastError(), "kernel launch");
  return plan.layout.total_size;
}

void decode_impl(const uint8_t* payload, size_t payload_size, float* output, size_t count,
                 bool accumulate, cudaStream_t stream) {
  uint8_t header_bytes[kHeaderSize] = {};
  if (payload_size >= kHeaderSize) {
    check_aligned(payload, "payload");
    check(cudaMemcpyAsync(header_bytes, payload, kHeaderSize, cudaMemcpyDeviceToHost, stream),
          "header copy");
    check(cudaStreamSynchronize(stream), "stream synchronize");
  }
  const Header header = parse_header(header_bytes, payload_size);
  if (header.element_count != count) {
    fail("payload holds " + std::to_string(header.element_count) + " elements, output has " +
         std::to_string(count));
  }
  const Layout layout =
      compute_layout(header.codec, header.block_size, header.element_count, header.aux);
  kernels_of(header.codec).decode(header, payload, layout, count, output, accumulate, stream);
  check(cudaGetLastError(), "kernel launch");
}

}  // namespace

bool device_available() {
  int devices = 0;
  const cudaError_t status = cudaGetDeviceCount(&devices);
  cudaGetLastError();  // clear the sticky "no driver / no device" error for later calls
  return status == cudaSuccess && devices > 0;
}

size_t encode(const CodecConfig& config, const float* input, size_t count, uint8_t* output,
              size_t output_capacity, cudaStream_t stream) {
  return encode_impl(config, input, nullptr, count, output, output_capacity, stream);
}

size_t encode_with_error_feedback(const CodecConfig& config, const float* gradient, float* residual,
                                  size_t count, uint8_t* output, size_t output_capacity,
                                  cudaStream_t stream) {
  return encode_impl(config, gradient, residual, count, output, output_capacity, stream);
}

void decode(const uint8_t* payload, size_t payload_size, float* output, size_t count,
            cudaStream_t stream) {
  decode_impl(payload, payload_size, output, count, false, stream);
}

void decode_accumulate(const uint8_t* payload, size_t payload_size, float* accumulator,
                       size_t count, cudaStream_t stream) {
  decode_impl(payload, payload_size, accumulator, count, true, stream);
}

}  // namespace torchwan::compression::cuda
