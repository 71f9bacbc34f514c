#include "c10d_backend/device_resources.h"

#include <c10/core/impl/VirtualGuardImpl.h>

namespace torchwan::c10d_backend {

bool built_with_cuda() {
#ifdef TORCHWAN_C10D_CUDA
  return true;
#else
  return false;
#endif
}

c10::Stream DeviceStreams::comm_stream(c10::Device device) {
  std::lock_guard<std::mutex> lock(mutex_);
  auto found = streams_.find(device.index());
  if (found != streams_.end()) return found->second;
  const c10::impl::VirtualGuardImpl guard(device.type());
  const c10::Stream stream = guard.getStreamFromGlobalPool(device, /*isHighPriority=*/false);
  streams_.emplace(device.index(), stream);
  return stream;
}

at::Tensor PinnedSlots::acquire(size_t bytes) {
  current_ = (current_ + 1) % slots_.size();
  Slot& slot = slots_[current_];
  if (slot.in_use) {
    slot.in_use->synchronize();
    slot.in_use.reset();
  }
  if (!slot.buffer.defined() || static_cast<size_t>(slot.buffer.numel()) < bytes) {
    // Grow with headroom so a slowly growing workload does not reallocate every step.
    const auto size = static_cast<int64_t>(bytes + bytes / 4);
    slot.buffer = at::empty({size}, at::TensorOptions().dtype(at::kByte).pinned_memory(true));
  }
  return slot.buffer;
}

void PinnedSlots::release_after(const c10::Stream& stream) {
  Slot& slot = slots_[current_];
  slot.in_use.emplace(stream.device_type());
  slot.in_use->record(stream);
}

}  // namespace torchwan::c10d_backend
