// What a process group keeps for device (CUDA) tensors: one communication stream per device, on
// which staging copies run so they never queue behind the caller's compute, and pinned host
// buffers reused from one collective to the next.
#pragma once

#include <ATen/ATen.h>
#include <c10/core/Event.h>
#include <c10/core/Stream.h>

#include <array>
#include <map>
#include <mutex>
#include <optional>

namespace torchwan::c10d_backend {

// Whether this build stages device tensors (TORCHWAN_C10D_CUDA); otherwise only CPU tensors pass.
bool built_with_cuda();

class DeviceStreams {
 public:
  // The communication stream of `device`, created on first use.
  c10::Stream comm_stream(c10::Device device);

 private:
  std::mutex mutex_;
  std::map<c10::DeviceIndex, c10::Stream> streams_;
};

// Two pinned buffers used in turn by the collective worker: while the copy back to the device of
// one collective is still running on the comm stream, the next collective stages through the
// other buffer. Only the collective worker thread touches it.
class PinnedSlots {
 public:
  // A pinned byte buffer of at least `bytes`, free of earlier copies.
  at::Tensor acquire(size_t bytes);
  // Marks the buffer last returned by acquire() as in use until `stream` reaches this point.
  void release_after(const c10::Stream& stream);

 private:
  struct Slot {
    at::Tensor buffer;
    std::optional<c10::Event> in_use;
  };
  std::array<Slot, 2> slots_;
  size_t current_ = 0;
};

}  // namespace torchwan::c10d_backend
