// What user threads must know without asking the progress thread: whether the transport was
// aborted and which peers are lost (so isend/irecv can fail at once), and whom to tell when a peer
// is lost. The progress thread writes it; everyone reads it.
#pragma once

#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "transport/transport.h"

namespace torchwan::transport::ucx {

class Health {
 public:
  explicit Health(int size)
      : lost_causes_(static_cast<size_t>(size)), departed_causes_(static_cast<size_t>(size)) {}

  // Returns false when the transport had already been aborted (the first reason stays).
  bool set_aborted(const std::string& reason) {
    std::lock_guard<std::mutex> lock(mutex_);
    if (aborted_reason_) return false;
    aborted_reason_ = reason;
    return true;
  }
  std::optional<std::string> aborted_reason() const {
    std::lock_guard<std::mutex> lock(mutex_);
    return aborted_reason_;
  }

  void mark_lost(int peer, const std::string& cause) {
    std::lock_guard<std::mutex> lock(mutex_);
    auto& slot = lost_causes_[static_cast<size_t>(peer)];
    if (!slot) slot = cause;
  }
  std::optional<std::string> lost_cause(int peer) const {
    std::lock_guard<std::mutex> lock(mutex_);
    return lost_causes_[static_cast<size_t>(peer)];
  }

  // A peer that left in order: sends to it fail at once, but receives still go to the engine,
  // which holds what the peer sent before leaving.
  void mark_departed(int peer, const std::string& cause) {
    std::lock_guard<std::mutex> lock(mutex_);
    auto& slot = departed_causes_[static_cast<size_t>(peer)];
    if (!slot) slot = cause;
  }
  std::optional<std::string> departed_cause(int peer) const {
    std::lock_guard<std::mutex> lock(mutex_);
    return departed_causes_[static_cast<size_t>(peer)];
  }

  void set_failure_handler(Transport::PeerFailureHandler handler) {
    std::lock_guard<std::mutex> lock(mutex_);
    failure_handler_ = std::move(handler);
  }
  Transport::PeerFailureHandler failure_handler() const {
    std::lock_guard<std::mutex> lock(mutex_);
    return failure_handler_;
  }

 private:
  mutable std::mutex mutex_;
  std::optional<std::string> aborted_reason_;
  std::vector<std::optional<std::string>> lost_causes_;
  std::vector<std::optional<std::string>> departed_causes_;
  Transport::PeerFailureHandler failure_handler_;
};

}  // namespace torchwan::transport::ucx
