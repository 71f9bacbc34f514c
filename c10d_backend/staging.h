// Gives an operation contiguous memory for every tensor it reads or writes, whatever the caller
// passed: contiguous CPU tensors are used as they are, non-contiguous ones are copied in and out,
// and device tensors travel through pinned host memory on the group's comm stream, after the work
// already queued on the caller's current stream (the data path of DESIGN.md, step 2). An operation
// that works on the device itself (the compressed allreduce, whose codecs run on the GPU) keeps
// its device tensors there (Memory::kDevice): they are only ordered after the caller's stream.
// Every byte copied between host and device is counted (pcie_bytes()).
#pragma once

#include <ATen/ATen.h>
#include <c10/core/Event.h>
#include <c10/core/Stream.h>

#include <optional>
#include <vector>

#include "c10d_backend/device_resources.h"

namespace torchwan::c10d_backend {

enum class Access : uint8_t { kRead, kWrite, kReadWrite };
// Where the operation wants a device tensor's data: staged into host memory, or left on the device
// (CPU tensors are always on the host).
enum class Memory : uint8_t { kHost, kDevice };

class Staging {
 public:
  explicit Staging(const char* op_name) : op_name_(op_name) {}

  // Registers `tensor`; returns its index for host(). Every tensor of one operation must be on
  // the same device. Throws a ValueError for sparse tensors, tensors on another device, and
  // written tensors whose elements overlap in memory (the result would be ambiguous).
  size_t add(const at::Tensor& tensor, Access access, Memory memory = Memory::kHost);

  // On the caller's thread, once every tensor is added: orders the operation after the work
  // already queued on the caller's current stream and keeps device memory alive until the comm
  // stream is done with it.
  void issue(DeviceStreams& streams);

  // Devices the operation's Future must synchronize with (empty for CPU operations).
  std::vector<c10::Device> devices() const;
  // The comm stream, for device operations: complete the Future with it as the current stream.
  std::optional<c10::Stream> stream() const { return stream_; }

  // On the worker: makes host(i) valid, holding the input data. With `slots`, device tensors
  // stage through reused pinned buffers; without, through fresh ones (point-to-point, where many
  // operations are in flight at once).
  void stage_in(PinnedSlots* slots);
  // The contiguous memory the operation works on: in host memory, or on the device for a device
  // tensor added with Memory::kDevice (then work on it on stream(), which stage_in ordered after
  // the caller's stream).
  const at::Tensor& host(size_t index) const { return entries_[index].host; }
  // Copies between host and device that the operation makes itself (its payloads), for the
  // group's counters; stage_in and stage_out count their own.
  void count_pcie_bytes(uint64_t bytes) { pcie_bytes_ += bytes; }
  uint64_t pcie_bytes() const { return pcie_bytes_; }
  // On the worker after the operation: writes results back to the caller's tensors (for device
  // tensors asynchronously on the comm stream).
  void stage_out();

 private:
  struct Entry {
    at::Tensor user;
    at::Tensor host;
    Access access;
    Memory memory;
  };

  const char* op_name_;
  std::vector<Entry> entries_;
  std::optional<c10::Device> device_;
  std::optional<c10::Stream> stream_;
  std::optional<c10::Event> caller_ready_;
  PinnedSlots* slots_ = nullptr;      // the slots a pinned buffer was taken from
  bool fresh_pinned_buffer_ = false;  // staged through a buffer of its own instead
  uint64_t pcie_bytes_ = 0;
};

}  // namespace torchwan::c10d_backend
