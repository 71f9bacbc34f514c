// Error checking and stream-ordered device memory for the CUDA codecs.
#pragma once

#include <cuda_runtime_api.h>

#include <cstddef>
#include <string>

#include "csrc/compression/wire_format.h"

namespace torchwan::compression::cuda {

inline void check(cudaError_t status, const char* what) {
  if (status != cudaSuccess) {
    throw CompressionError(std::string("torchwan compression: CUDA ") + what +
                           " failed: " + cudaGetErrorString(status));
  }
}

// Device scratch memory tied to a stream: allocated and freed in stream order
// (cudaMallocAsync / cudaFreeAsync), so it may be released while kernels that use it are still
// queued. Move-only.
template <class T>
class DeviceBuffer {
 public:
  DeviceBuffer(size_t count, cudaStream_t stream) : stream_(stream), count_(count) {
    if (count > 0) {
      void* pointer = nullptr;
      check(cudaMallocAsync(&pointer, count * sizeof(T), stream), "cudaMallocAsync");
      data_ = static_cast<T*>(pointer);
    }
  }
  ~DeviceBuffer() {
    if (data_ != nullptr) cudaFreeAsync(data_, stream_);  // nothing useful to do on failure
  }
  DeviceBuffer(const DeviceBuffer&) = delete;
  DeviceBuffer& operator=(const DeviceBuffer&) = delete;
  DeviceBuffer(DeviceBuffer&& other) noexcept
      : stream_(other.stream_), count_(other.count_), data_(other.data_) {
    other.data_ = nullptr;
    other.count_ = 0;
  }
  DeviceBuffer& operator=(DeviceBuffer&&) = delete;

  T* data() const { return data_; }
  size_t size() const { return count_; }

 private:
  cudaStream_t stream_;
  size_t count_;
  T* data_ = nullptr;
};

}  // namespace torchwan::compression::cuda
