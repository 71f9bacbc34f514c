#include "transport/core/peer_table.h"

#include "base/log.h"
#include "transport/request.h"

namespace torchwan::transport::core {

PeerTable::PeerTable(int size)
    : lost_(static_cast<size_t>(size)), departed_(static_cast<size_t>(size), false) {}

bool PeerTable::abort(Failure failure) {
  std::lock_guard<std::mutex> lock(mutex_);
  if (aborted_) return false;
  aborted_ = std::move(failure);
  return true;
}

std::optional<Failure> PeerTable::aborted() const {
  std::lock_guard<std::mutex> lock(mutex_);
  return aborted_;
}

bool PeerTable::lose(int peer, Failure failure) {
  std::lock_guard<std::mutex> lock(mutex_);
  auto& slot = lost_.at(static_cast<size_t>(peer));
  if (slot) return false;
  slot = std::move(failure);
  return true;
}

std::optional<Failure> PeerTable::lost(int peer) const {
  std::lock_guard<std::mutex> lock(mutex_);
  return lost_.at(static_cast<size_t>(peer));
}

void PeerTable::depart(int peer) {
  std::lock_guard<std::mutex> lock(mutex_);
  departed_.at(static_cast<size_t>(peer)) = true;
}

bool PeerTable::departed(int peer) const {
  std::lock_guard<std::mutex> lock(mutex_);
  return departed_.at(static_cast<size_t>(peer));
}

std::optional<Failure> PeerTable::refusal(int peer, bool is_send) const {
  std::lock_guard<std::mutex> lock(mutex_);
  if (aborted_) return aborted_;
  if (peer == kAnySource) return std::nullopt;
  if (!is_send && departed_.at(static_cast<size_t>(peer))) return std::nullopt;
  return lost_.at(static_cast<size_t>(peer));
}

void PeerTable::set_failure_handler(FailureHandler handler) {
  std::lock_guard<std::mutex> lock(mutex_);
  failure_handler_ = std::move(handler);
}

void PeerTable::report_lost(int peer, const std::string& reason) const {
  FailureHandler handler;
  {
    std::lock_guard<std::mutex> lock(mutex_);
    handler = failure_handler_;
  }
  if (!handler) return;
  // Called without the lock: the handler may call back into the transport.
  try {
    handler(peer, reason);
  } catch (const std::exception& error) {
    layer_logger("transport")->error("peer failure handler threw: {}", error.what());
  }
}

}  // namespace torchwan::transport::core
