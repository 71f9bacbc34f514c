// Top-k sparsification on the GPU. The kept set is defined in topk_select.h; this file builds the
// radix-select histograms on the device (the threshold search itself runs on the host on the
// small histograms), then compacts the kept elements in index order: per-chunk counts, chunk
// offsets and tie quotas computed on the host, and a block-wide scan inside each chunk.
#include <string>
#include <vector>

#include "csrc/compression/cuda_buffer.h"
#include "csrc/compression/cuda_kernels.h"
#include "csrc/compression/scalar_math.h"
#include "csrc/compression/topk_select.h"

namespace torchwan::compression::cuda {
namespace {

constexpr unsigned kThreads = 256;
constexpr unsigned kItemsPerThread = 4;
constexpr size_t kChunk = kThreads * kItemsPerThread;
constexpr unsigned kFullMask = 0xFFFFFFFFu;

__global__ void add_residual_kernel(const float* __restrict__ input, float* __restrict__ residual,
                                    size_t count) {
  const size_t stride = static_cast<size_t>(gridDim.x) * blockDim.x;
  for (size_t i = static_cast<size_t>(blockIdx.x) * blockDim.x + threadIdx.x; i < count;
       i += stride) {
    residual[i] = math::add_residual(input[i], residual[i]);
  }
}

__global__ void histogram_kernel(const float* __restrict__ source, size_t count, uint32_t prefix,
                                 uint32_t prefix_mask, int shift, uint32_t bins,
                                 unsigned long long* __restrict__ histogram) {
  __shared__ unsigned int local[kTopKMaxBins];
  for (uint32_t b = threadIdx.x; b < bins; b += blockDim.x) local[b] = 0;
  __syncthreads();
  const size_t stride = static_cast<size_t>(gridDim.x) * blockDim.x;
  for (size_t i = static_cast<size_t>(blockIdx.x) * blockDim.x + threadIdx.x; i < count;
       i += stride) {
    const uint32_t key = math::magnitude_bits(source[i]);
    if ((key & prefix_mask) == prefix) atomicAdd(&local[(key >> shift) & (bins - 1)], 1u);
  }
  __syncthreads();
  for (uint32_t b = threadIdx.x; b < bins; b += blockDim.x) {
    if (local[b] != 0) atomicAdd(&histogram[b], static_cast<unsigned long long>(local[b]));
  }
}

// Per chunk of kChunk elements: how many keys are above the threshold and how many equal it.
__global__ void chunk_count_kernel(const float* __restrict__ source, size_t count,
                                   uint32_t threshold, uint32_t* __restrict__ above,
                                   uint32_t* __restrict__ equal) {
  __shared__ unsigned int counts[2];
  if (threadIdx.x < 2) counts[threadIdx.x] = 0;
  __syncthreads();
  const size_t first = static_cast<size_t>(blockIdx.x) * kChunk;
  unsigned int mine_above = 0;
  unsigned int mine_equal = 0;
  for (size_t j = threadIdx.x; j < kChunk && first + j < count; j += blockDim.x) {
    const uint32_t key = math::magnitude_bits(source[first + j]);
    mine_above += key > threshold ? 1u : 0u;
    mine_equal += key == threshold ? 1u : 0u;
  }
  if (mine_above != 0) atomicAdd(&counts[0], mine_above);
  if (mine_equal != 0) atomicAdd(&counts[1], mine_equal);
  __syncthreads();
  if (threadIdx.x == 0) {
    above[blockIdx.x] = counts[0];
    equal[blockIdx.x] = counts[1];
  }
}

// Exclusive prefix sum of one value per thread over the CTA, in thread order.
__device__ uint32_t block_exclusive_scan(uint32_t value, uint32_t* warp_totals) {
  const unsigned lane = threadIdx.x % 32;
  const unsigned warp = threadIdx.x / 32;
  uint32_t inclusive = value;
  for (unsigned offset = 1; offset < 32; offset *= 2) {
    const uint32_t lower = __shfl_up_sync(kFullMask, inclusive, offset);
    if (lane >= offset) inclusive += lower;
  }
  if (lane == 31) warp_totals[warp] = inclusive;
  __syncthreads();
  uint32_t before = 0;
  for (unsigned w = 0; w < warp; ++w) before += warp_totals[w];
  __syncthreads();  // the totals may be overwritten by the next scan
  return before + inclusive - value;
}

// Writes the kept (index, value) pairs of one chunk at their final, index-ordered positions.
__global__ void compact_kernel(const float* __restrict__ source, size_t count, uint32_t threshold,
                               const unsigned long long* __restrict__ chunk_base,
                               const uint32_t* __restrict__ chunk_ties,
                               uint32_t* __restrict__ indices, float* __restrict__ values,
                               float* __restrict__ residual) {
  __shared__ uint32_t warp_totals[kThreads / 32];
  const size_t first = static_cast<size_t>(blockIdx.x) * kChunk + threadIdx.x * kItemsPerThread;
  float items[kItemsPerThread];
  uint32_t keys[kItemsPerThread];
  uint32_t my_equal = 0;
  for (unsigned m = 0; m < kItemsPerThread; ++m) {
    const bool valid = first + m < count;
    items[m] = valid ? source[first + m] : 0.0f;
    keys[m] = valid ? math::magnitude_bits(items[m]) : 0u;
    // Invalid slots have key 0; the threshold of a non-empty selection may be 0 too, so mask.
    my_equal += valid && keys[m] == threshold ? 1u : 0u;
  }
  const uint32_t ties_before = block_exclusive_scan(my_equal, warp_totals);
  const uint32_t quota = chunk_ties[blockIdx.x];
  bool keep[kItemsPerThread];
  uint32_t my_kept = 0;
  uint32_t tie_rank = ties_before;
  for (unsigned m = 0; m < kItemsPerThread; ++m) {
    const bool valid = first + m < count;
    const bool tie = valid && keys[m] == threshold;
    keep[m] = valid && (keys[m] > threshold || (tie && tie_rank < quota));
    tie_rank += tie ? 1u : 0u;
    my_kept += keep[m] ? 1u : 0u;
  }
  uint64_t position = chunk_base[blockIdx.x] + block_exclusive_scan(my_kept, warp_totals);
  for (unsigned m = 0; m < kItemsPerThread; ++m) {
    if (!keep[m]) continue;
    const float t = items[m];
    indices[position] = static_cast<uint32_t>(first + m);
    values[position] = t;
    if (residual != nullptr) residual[first + m] = t - t;
    ++position;
  }
}

__global__ void validate_indices_kernel(const uint32_t* __restrict__ indices, size_t k,
                                        size_t count, unsigned int* __restrict__ bad) {
  const size_t stride = static_cast<size_t>(gridDim.x) * blockDim.x;
  for (size_t j = static_cast<size_t>(blockIdx.x) * blockDim.x + threadIdx.x; j < k; j += stride) {
    const uint32_t index = indices[j];
    if (index >= count || (j > 0 && index <= indices[j - 1])) atomicOr(bad, 1u);
  }
}

template <bool kAccumulate>
__global__ void scatter_kernel(const uint32_t* __restrict__ indices,
                               const float* __restrict__ values, size_t k,
                               float* __restrict__ output) {
  const size_t stride = static_cast<size_t>(gridDim.x) * blockDim.x;
  for (size_t j = static_cast<size_t>(blockIdx.x) * blockDim.x + threadIdx.x; j < k; j += stride) {
    const uint32_t index = indices[j];
    output[index] = kAccumulate ? output[index] + values[j] : values[j];
  }
}

template <class T>
void copy_to_host(std::vector<T>& destination, const T* source, cudaStream_t stream) {
  check(cudaMemcpyAsync(destination.data(), source, destination.size() * sizeof(T),
                        cudaMemcpyDeviceToHost, stream),
        "device-to-host copy");
  check(cudaStreamSynchronize(stream), "stream synchronize");
}

}  // namespace

void run_encode_topk(const ResolvedParams& params, uint64_t /*seed*/, const float* input,
                     float* residual, size_t count, uint8_t* payload, const Layout& layout,
                     cudaStream_t stream) {
  const uint64_t k = params.aux;
  const float* source = input;
  if (residual != nullptr) {
    if (count > 0) {
      add_residual_kernel<<<grid_for(count, kThreads), kThreads, 0, stream>>>(input, residual,
                                                                              count);
    }
    source = residual;
  }
  if (count == 0) return;
  RadixSelect select(k);
  DeviceBuffer<unsigned long long> histogram(kTopKMaxBins, stream);
  std::vector<uint64_t> host_histogram;
  for (const RadixPass& pass : kTopKPasses) {
    const uint32_t bins = uint32_t{1} << pass.bits;
    check(cudaMemsetAsync(histogram.data(), 0, bins * sizeof(unsigned long long), stream),
          "memset");
    histogram_kernel<<<grid_for(count, kThreads), kThreads, 0, stream>>>(
        source, count, select.prefix, select.prefix_mask, pass.shift, bins, histogram.data());
    check(cudaGetLastError(), "histogram kernel launch");
    std::vector<unsigned long long> counts(bins);
    copy_to_host(counts, histogram.data(), stream);
    host_histogram.assign(counts.begin(), counts.end());
    select.consume(pass, host_histogram.data(), host_histogram.size());
  }
  const uint32_t threshold = select.threshold();
  const size_t chunks = (count + kChunk - 1) / kChunk;
  DeviceBuffer<uint32_t> above(chunks, stream);
  DeviceBuffer<uint32_t> equal(chunks, stream);
  chunk_count_kernel<<<static_cast<unsigned>(chunks), kThreads, 0, stream>>>(
      source, count, threshold, above.data(), equal.data());
  check(cudaGetLastError(), "chunk count kernel launch");
  std::vector<uint32_t> host_above(chunks);
  std::vector<uint32_t> host_equal(chunks);
  copy_to_host(host_above, above.data(), stream);
  copy_to_host(host_equal, equal.data(), stream);
  // Ties are taken in index order: each chunk gets what the chunks before it left over.
  std::vector<unsigned long long> base(chunks);
  std::vector<uint32_t> quota(chunks);
  uint64_t ties_left = select.ties();
  uint64_t written = 0;
  for (size_t c = 0; c < chunks; ++c) {
    quota[c] = static_cast<uint32_t>(host_equal[c] < ties_left ? host_equal[c] : ties_left);
    ties_left -= quota[c];
    base[c] = written;
    written += host_above[c] + quota[c];
  }
  if (written != k) {
    throw CompressionError("torchwan compression: top-k kept " + std::to_string(written) +
                           " elements instead of " + std::to_string(k));
  }
  DeviceBuffer<unsigned long long> device_base(chunks, stream);
  DeviceBuffer<uint32_t> device_quota(chunks, stream);
  check(cudaMemcpyAsync(device_base.data(), base.data(), chunks * sizeof(unsigned long long),
                        cudaMemcpyHostToDevice, stream),
        "host-to-device copy");
  check(cudaMemcpyAsync(device_quota.data(), quota.data(), chunks * sizeof(uint32_t),
                        cudaMemcpyHostToDevice, stream),
        "host-to-device copy");
  compact_kernel<<<static_cast<unsigned>(chunks), kThreads, 0, stream>>>(
      source, count, threshold, device_base.data(), device_quota.data(),
      reinterpret_cast<uint32_t*>(payload + layout.indices_offset),
      reinterpret_cast<float*>(payload + layout.values_offset), residual);
  check(cudaGetLastError(), "compact kernel launch");
  // The host vectors above must outlive the copies that read them.
  check(cudaStreamSynchronize(stream), "stream synchronize");
}

void run_decode_topk(const Header& header, const uint8_t* payload, const Layout& layout,
                     size_t count, float* output, bool accumulate, cudaStream_t stream) {
  const uint64_t k = header.aux;
  const auto* indices = reinterpret_cast<const uint32_t*>(payload + layout.indices_offset);
  const auto* values = reinterpret_cast<const float*>(payload + layout.values_offset);
  if (k > 0) {
    DeviceBuffer<unsigned int> bad(1, stream);
    check(cudaMemsetAsync(bad.data(), 0, sizeof(unsigned int), stream), "memset");
    validate_indices_kernel<<<grid_for(k, kThreads), kThreads, 0, stream>>>(indices, k, count,
                                                                            bad.data());
    check(cudaGetLastError(), "validate kernel launch");
    std::vector<unsigned int> host_bad(1);
    copy_to_host(host_bad, bad.data(), stream);
    if (host_bad[0] != 0) {
      throw CompressionError("torchwan compression: top-k indices out of range or not ascending (" +
                             std::to_string(count) + " elements)");
    }
  }
  if (!accumulate && count > 0) {
    check(cudaMemsetAsync(output, 0, count * sizeof(float), stream), "memset");
  }
  if (k == 0) return;
  if (accumulate) {
    scatter_kernel<true>
        <<<grid_for(k, kThreads), kThreads, 0, stream>>>(indices, values, k, output);
  } else {
    scatter_kernel<false>
        <<<grid_for(k, kThreads), kThreads, 0, stream>>>(indices, values, k, output);
  }
}

}  // namespace torchwan::compression::cuda
