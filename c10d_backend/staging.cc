#include "c10d_backend/staging.h"

#include <ATen/MemoryOverlap.h>
#include <c10/core/StreamGuard.h>
#include <c10/core/impl/VirtualGuardImpl.h>
#include <c10/util/Exception.h>

namespace torchwan::c10d_backend {
namespace {

constexpr size_t kAlignment = 64;

size_t aligned(size_t bytes) { return (bytes + kAlignment - 1) / kAlignment * kAlignment; }

bool reads(Access access) { return access != Access::kWrite; }
bool writes(Access access) { return access != Access::kRead; }

// A view of `bytes` of `buffer` from `offset`, shaped and typed like `like`.
at::Tensor carve(const at::Tensor& buffer, size_t offset, const at::Tensor& like) {
  return buffer.narrow(0, static_cast<int64_t>(offset), static_cast<int64_t>(like.nbytes()))
      .view(like.scalar_type())
      .view(like.sizes());
}

}  // namespace

size_t Staging::add(const at::Tensor& tensor, Access access, Memory memory) {
  TORCH_CHECK_VALUE(tensor.defined(), "torchwan ", op_name_, ": got an undefined tensor");
  TORCH_CHECK_VALUE(tensor.layout() == at::kStrided, "torchwan ", op_name_,
                    ": only dense tensors are supported, got layout ", tensor.layout());
  const c10::Device device = tensor.device();
  if (!device.is_cpu()) {
    TORCH_CHECK_VALUE(device.is_cuda() && built_with_cuda(), "torchwan ", op_name_, ": tensors on ",
                      device, " are not supported by this build (",
                      built_with_cuda() ? "CPU and CUDA only" : "CPU only", ")");
    TORCH_CHECK_VALUE(!device_ || *device_ == device, "torchwan ", op_name_,
                      ": all tensors of one call must be on the same device, got ", *device_,
                      " and ", device);
    device_ = device;
  }
  TORCH_CHECK_VALUE(entries_.empty() || entries_.front().user.device().is_cpu() == device.is_cpu(),
                    "torchwan ", op_name_, ": cannot mix CPU and device tensors in one call");
  if (writes(access)) {
    TORCH_CHECK_VALUE(at::has_internal_overlap(tensor) != at::MemOverlap::Yes, "torchwan ",
                      op_name_,
                      ": an output tensor has elements sharing memory (e.g. from expand()); "
                      "pass a tensor with distinct elements");
  }
  entries_.push_back(Entry{tensor, at::Tensor(), access, device.is_cpu() ? Memory::kHost : memory});
  return entries_.size() - 1;
}

void Staging::issue(DeviceStreams& streams) {
  if (!device_) return;
  const c10::impl::VirtualGuardImpl guard(device_->type());
  stream_ = streams.comm_stream(*device_);
  caller_ready_.emplace(device_->type());
  caller_ready_->record(guard.getStream(*device_));
  // The caller may free its tensors as soon as the call returns; the caching allocator must not
  // hand their memory out again before the comm stream has finished with it.
  for (const Entry& entry : entries_) {
    const c10::DataPtr& memory = entry.user.storage().data_ptr();
    if (memory.get() != nullptr) guard.recordDataPtrOnStream(memory, *stream_);
  }
}

std::vector<c10::Device> Staging::devices() const {
  if (!device_) return {};
  return {*device_};
}

void Staging::stage_in(PinnedSlots* slots) {
  if (!device_) {
    for (Entry& entry : entries_) {
      if (entry.user.is_contiguous()) {
        entry.host = entry.user;
      } else if (reads(entry.access)) {
        entry.host = entry.user.contiguous();
      } else {
        entry.host = at::empty(entry.user.sizes(), entry.user.options());
      }
    }
    return;
  }
  const c10::StreamGuard on_comm_stream(*stream_);
  caller_ready_->block(*stream_);
  size_t total = 0;
  for (Entry& entry : entries_) {
    if (entry.memory == Memory::kHost) {
      total += aligned(entry.user.nbytes());
    } else if (entry.user.is_contiguous()) {
      entry.host = entry.user;
    } else {
      // Queued on the comm stream, behind the caller's work.
      entry.host = reads(entry.access) ? entry.user.contiguous()
                                       : at::empty(entry.user.sizes(), entry.user.options());
    }
  }
  if (total == 0) return;
  slots_ = slots;
  fresh_pinned_buffer_ = slots == nullptr;
  const at::Tensor buffer =
      slots != nullptr ? slots->acquire(total)
                       : at::empty({static_cast<int64_t>(total)},
                                   at::TensorOptions().dtype(at::kByte).pinned_memory(true));
  size_t offset = 0;
  for (Entry& entry : entries_) {
    if (entry.memory != Memory::kHost) continue;
    entry.host = carve(buffer, offset, entry.user);
    offset += aligned(entry.user.nbytes());
    if (reads(entry.access)) {
      entry.host.copy_(entry.user, /*non_blocking=*/true);
      pcie_bytes_ += entry.user.nbytes();
    }
  }
  stream_->synchronize();
}

void Staging::stage_out() {
  if (!device_) {
    for (Entry& entry : entries_) {
      if (writes(entry.access) && !entry.host.is_same(entry.user)) entry.user.copy_(entry.host);
    }
    return;
  }
  const c10::StreamGuard on_comm_stream(*stream_);
  for (Entry& entry : entries_) {
    if (!writes(entry.access) || entry.host.is_same(entry.user)) continue;
    entry.user.copy_(entry.host, /*non_blocking=*/true);
    if (entry.memory == Memory::kHost) pcie_bytes_ += entry.user.nbytes();
  }
  if (slots_ != nullptr) {
    slots_->release_after(*stream_);
  } else if (fresh_pinned_buffer_) {
    // A fresh pinned buffer goes back to torch's host cache when this object dies; the copies
    // out of it must be finished by then.
    stream_->synchronize();
  }
}

}  // namespace torchwan::c10d_backend
