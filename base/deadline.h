// Waits bounded by one deadline that several calls share (a bootstrap, a barrier).
#pragma once

#include <algorithm>
#include <chrono>

namespace torchwan::base {

// The time from now until `deadline`, and at least 1 ms: once the deadline passed, each wait
// still gets a brief look, so a peer that is merely late is still seen and an error can name
// every peer that is missing rather than only the first.
inline std::chrono::milliseconds time_left(std::chrono::steady_clock::time_point deadline) {
  const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
      deadline - std::chrono::steady_clock::now());
  return std::max(left, std::chrono::milliseconds(1));
}

}  // namespace torchwan::base
