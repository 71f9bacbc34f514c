// What user threads must know without asking the progress thread: whether the transport was
// aborted and which peers are lost, so that calls naming them fail at once. Thread-safe.
#pragma once

#include <exception>
#include <mutex>
#include <vector>

namespace torchwan::transport::zmq_detail {

class PeerHealth {
 public:
  explicit PeerHealth(int size)
      : lost_(static_cast<size_t>(size)), departed_(static_cast<size_t>(size), false) {}

  // The error a new request to or from `peer` fails with at once, or null when it may proceed.
  std::exception_ptr refusal(int peer) const {
    std::lock_guard<std::mutex> lock(mutex_);
    return aborted_ ? aborted_ : lost_[static_cast<size_t>(peer)];
  }
  // The same for a receive: a peer that left in order does not refuse it at once, since what it
  // sent before leaving may still be waiting for it.
  std::exception_ptr receive_refusal(int peer) const {
    std::lock_guard<std::mutex> lock(mutex_);
    if (aborted_) return aborted_;
    return departed_[static_cast<size_t>(peer)] ? nullptr : lost_[static_cast<size_t>(peer)];
  }
  // The same for an any-source receive, which no single lost peer refuses.
  std::exception_ptr refusal_any() const {
    std::lock_guard<std::mutex> lock(mutex_);
    return aborted_;
  }
  bool is_lost(int peer) const {
    std::lock_guard<std::mutex> lock(mutex_);
    return lost_[static_cast<size_t>(peer)] != nullptr;
  }
  bool is_aborted() const {
    std::lock_guard<std::mutex> lock(mutex_);
    return aborted_ != nullptr;
  }
  // Returns false when `peer` was already lost (the first cause is kept).
  bool mark_lost(int peer, std::exception_ptr error) {
    std::lock_guard<std::mutex> lock(mutex_);
    auto& slot = lost_[static_cast<size_t>(peer)];
    if (slot) return false;
    slot = std::move(error);
    return true;
  }
  // Marks `peer` lost by an orderly goodbye; call before mark_lost.
  void mark_departed(int peer) {
    std::lock_guard<std::mutex> lock(mutex_);
    departed_[static_cast<size_t>(peer)] = true;
  }
  // Returns false when already aborted.
  bool mark_aborted(std::exception_ptr error) {
    std::lock_guard<std::mutex> lock(mutex_);
    if (aborted_) return false;
    aborted_ = std::move(error);
    return true;
  }

 private:
  mutable std::mutex mutex_;
  std::exception_ptr aborted_;
  std::vector<std::exception_ptr> lost_;
  std::vector<bool> departed_;
};

}  // namespace torchwan::transport::zmq_detail
