// What every process group over one transport device shares: the device itself (the connections
// to every peer process and their progress threads), the store it was bootstrapped through, from
// which later groups draw their channel numbers, and the threads that complete futures. The first
// group of a process (WORLD) creates it; groups created after it over the same processes, with the
// same transport options, open views over it and start no connection.
#pragma once

#include <chrono>
#include <cstdint>
#include <memory>
#include <torch/csrc/distributed/c10d/Store.hpp>

#include "c10d_backend/op_runner.h"
#include "transport/device.h"

namespace torchwan::c10d_backend {

class SharedDevice {
 public:
  SharedDevice(const std::shared_ptr<transport::Device>& device,
               c10::intrusive_ptr<c10d::Store> store);

  // The device, or null once every group over it has shut down (and its connections closed).
  std::shared_ptr<transport::Device> device() const { return device_.lock(); }
  // Future completions of every group on the device, on a few threads started as needed: a
  // Future callback that issues another collective and waits for it (DDP's PowerSGD hook) must
  // not block the thread that would complete that collective.
  OpRunner& completions() { return completions_; }

  // The channel of a new group, the same on all its ranks: its rank 0 draws the next number from
  // the device's store and publishes it in the group's store, where the other ranks read it.
  uint32_t channel_for_group(const c10::intrusive_ptr<c10d::Store>& group_store, int group_rank,
                             std::chrono::milliseconds timeout);

 private:
  static constexpr size_t kCompletionThreads = 8;

  // Held by the groups' views, so that the connections close when the last group shuts down.
  std::weak_ptr<transport::Device> device_;
  c10::intrusive_ptr<c10d::Store> store_;
  OpRunner completions_{kCompletionThreads};
};

}  // namespace torchwan::c10d_backend
