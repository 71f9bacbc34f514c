// Waiting in tests for something another thread or process makes true, without a fixed sleep.
#pragma once

#include <chrono>
#include <thread>

namespace torchwan::testing {

// Polls `predicate` every `interval` until it holds or `timeout` has passed; checks it once more
// at the deadline, so a condition that became true during the last sleep still counts.
template <typename Predicate>
bool poll_until(Predicate&& predicate, std::chrono::milliseconds timeout,
                std::chrono::milliseconds interval = std::chrono::milliseconds(5)) {
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  while (std::chrono::steady_clock::now() < deadline) {
    if (predicate()) return true;
    std::this_thread::sleep_for(interval);
  }
  return predicate();
}

}  // namespace torchwan::testing
