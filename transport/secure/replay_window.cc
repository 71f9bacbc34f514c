#include "transport/secure/replay_window.h"

#include <algorithm>

namespace torchwan::transport {

ReplayWindow::ReplayWindow(uint64_t span) : span_words_(std::max<uint64_t>(1, (span + 63) / 64)) {}

ReplayWindow::Verdict ReplayWindow::accept(uint64_t counter) {
  if (counter < base_) return Verdict::kTooOld;
  uint64_t word = (counter - base_) / 64;
  if (word >= span_words_) {
    // Slide forward: the oldest counters not yet seen will never be accepted now.
    const uint64_t drop = word - span_words_ + 1;
    if (drop >= words_.size()) {
      words_.clear();
    } else {
      words_.erase(words_.begin(), words_.begin() + static_cast<std::ptrdiff_t>(drop));
    }
    base_ += drop * 64;
    word -= drop;
  }
  if (words_.size() <= word) words_.resize(word + 1, 0);
  const uint64_t bit = uint64_t{1} << ((counter - base_) % 64);
  if ((words_[word] & bit) != 0) return Verdict::kReplayed;
  words_[word] |= bit;
  while (!words_.empty() && words_.front() == ~uint64_t{0}) {
    words_.pop_front();
    base_ += 64;
  }
  return Verdict::kFresh;
}

}  // namespace torchwan::transport
