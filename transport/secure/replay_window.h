// Which message counters of one sender a receiver has accepted, so that each is accepted once.
// Receives complete out of the sender's order (different tags are received in any order, and
// completions may run on several threads), so this is a window, not a "next expected" counter:
// counters below `base` all count as used; above it one bit per counter, up to `span` counters.
// It grows only as far as completions are actually out of order, and a counter that falls more
// than `span` behind the newest accepted one (a message never received, e.g. a canceled send)
// is given up, which keeps the state bounded.
#pragma once

#include <cstddef>
#include <cstdint>
#include <deque>

namespace torchwan::transport {

class ReplayWindow {
 public:
  enum class Verdict { kFresh, kReplayed, kTooOld };

  // `span` is rounded up to a multiple of 64.
  explicit ReplayWindow(uint64_t span);

  // Marks `counter` used; kFresh when it was not used before and is still inside the window.
  Verdict accept(uint64_t counter);

  // Counters below this one are all used or given up.
  uint64_t base() const { return base_; }
  // Words of bits held: a measure of how out of order completions have been.
  size_t words() const { return words_.size(); }

 private:
  uint64_t span_words_;
  uint64_t base_ = 0;
  std::deque<uint64_t> words_;  // bit b of word w: counter base_ + 64 * w + b was accepted
};

}  // namespace torchwan::transport
