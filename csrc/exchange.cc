#include "csrc/exchange.h"

#include <fmt/format.h>

#include <algorithm>
#include <stdexcept>
#include <string>
#include <tuple>
#include <utility>

#include "base/log.h"
#include "transport/errors.h"

namespace torchwan::engine {
namespace {

using Clock = std::chrono::steady_clock;
using transport::ErrorKind;
using transport::TransportError;

// How long a failed collective waits for the transport to release canceled requests before it
// aborts the transport (which fails every pending request) to get the buffers back.
constexpr std::chrono::seconds kReleaseGrace{2};
// Condition-variable waits are cut into slices so a far-away deadline (time_point::max()) never
// overflows the clock conversion inside the standard library.
constexpr std::chrono::seconds kWaitSlice{1};

std::chrono::milliseconds remaining_until(Clock::time_point deadline) {
  const auto now = Clock::now();
  if (now >= deadline) return std::chrono::milliseconds(0);
  return std::chrono::duration_cast<std::chrono::milliseconds>(
      std::min<Clock::duration>(deadline - now, std::chrono::hours(24)));
}

}  // namespace

Exchange::Exchange(const CollectiveContext& ctx, const char* collective, PairBytes pair_bytes)
    : transport_(ctx.transport),
      seq_(ctx.seq),
      deadline_(ctx.deadline),
      collective_(collective),
      scratch_pool_(ctx.scratch_pool),
      rank_(ctx.transport.rank()),
      size_(ctx.transport.size()),
      group_rank_(rank_),
      group_size_(size_),
      shared_(std::make_shared<SharedState>()) {
  if (ctx.signature != nullptr && size_ > 1) start_signature_check(*ctx.signature, pair_bytes);
}

Exchange::~Exchange() { cancel_and_drain(); }

Exchange::Handle Exchange::send(int peer, uint32_t step, const void* data, size_t bytes) {
  return post(true, peer, step, const_cast<void*>(data), bytes);
}

Exchange::Handle Exchange::recv(int peer, uint32_t step, void* data, size_t bytes) {
  return post(false, peer, step, data, bytes);
}

Exchange::Subgroup::Subgroup(Exchange& ex, std::span<const int> members, uint32_t phase) : ex_(ex) {
  const auto self = std::find(members.begin(), members.end(), ex.rank_);
  if (!ex.members_.empty() || phase >= kMaxPhases || self == members.end()) {
    throw std::logic_error(
        fmt::format("{}: invalid subgroup (nested, phase {}, or without rank {})", ex.collective_,
                    phase, ex.rank_));
  }
  ex.members_ = members;
  ex.group_rank_ = static_cast<int>(self - members.begin());
  ex.group_size_ = static_cast<int>(members.size());
  ex.step_base_ = phase * kPhaseSteps;
  ex.step_mask_ = kPhaseSteps - 1;
}

Exchange::Subgroup::~Subgroup() {
  ex_.members_ = {};
  ex_.group_rank_ = ex_.rank_;
  ex_.group_size_ = ex_.size_;
  ex_.step_base_ = 0;
  ex_.step_mask_ = 0xffff;
}

Exchange::Handle Exchange::post(bool is_send, int peer, uint32_t step, void* data, size_t bytes) {
  if (!members_.empty()) {
    // Positions come from the algorithms' own arithmetic; an out-of-range one is an engine bug.
    if (peer < 0 || peer >= group_size_) {
      fail_with(
          std::make_exception_ptr(TransportError(
              ErrorKind::kInternal,
              fmt::format("subgroup position {} outside a subgroup of {}", peer, group_size_))),
          -1);
    }
    peer = members_[static_cast<size_t>(peer)];
  }
  const transport::Tag tag = collective_tag(seq_, step_base_ + (step & step_mask_));
  auto on_complete = [shared = shared_](transport::Request&) {
    {
      std::lock_guard<std::mutex> lock(shared->mutex);
      ++shared->completions;
    }
    shared->changed.notify_all();
  };
  Handle request;
  try {
    request = is_send ? transport_.isend(peer, tag, data, bytes, std::move(on_complete))
                      : transport_.irecv(peer, tag, data, bytes, std::move(on_complete));
  } catch (...) {
    fail_with(std::current_exception(), peer);
  }
  if (!request) {
    fail_with(std::make_exception_ptr(
                  TransportError(ErrorKind::kInternal, "the transport returned no request", peer)),
              peer);
  }
  posted_.push_back(request);
  return request;
}

bool Exchange::finished(const Handle& request) {
  if (!request) return true;
  if (!request->done()) return false;
  if (auto error = request->error()) fail_with(error, request->peer());
  return true;
}

void Exchange::wait(const Handle& request) {
  for (;;) {
    const uint64_t seen = completions();
    if (finished(request)) return;
    wait_for_completion(seen);
  }
}

void Exchange::wait_all() {
  for (size_t i = 0; i < posted_.size(); ++i) wait(posted_[i]);
}

uint8_t* Exchange::scratch(size_t bytes) {
  auto& buffers = shared_->scratch;
  buffers.push_back(scratch_pool_ != nullptr ? scratch_pool_->take(bytes)
                                             : ScratchPool::unpooled(bytes));
  return buffers.back().data();
}

uint64_t Exchange::completions() const {
  std::lock_guard<std::mutex> lock(shared_->mutex);
  return shared_->completions;
}

void Exchange::wait_for_completion(uint64_t seen) {
  // A signature that arrived fails a mismatched call here, even when its data can never match.
  if (signatures_unchecked_ > 0) check_signatures();
  {
    std::unique_lock<std::mutex> lock(shared_->mutex);
    while (shared_->completions == seen) {
      const auto now = Clock::now();
      if (now >= deadline_) {
        lock.unlock();
        fail_deadline();
      }
      shared_->changed.wait_for(lock, std::min<Clock::duration>(deadline_ - now, kWaitSlice));
    }
  }
  if (signatures_unchecked_ > 0) check_signatures();
}

void Exchange::wait_quietly(const Handle& request, Clock::time_point until) {
  std::unique_lock<std::mutex> lock(shared_->mutex);
  while (!request->done()) {
    const auto now = Clock::now();
    if (now >= until) return;
    shared_->changed.wait_for(lock, std::min<Clock::duration>(until - now, kWaitSlice));
  }
}

void Exchange::fail_deadline() {
  // Blame the oldest request still pending: the peer it waits for is the one holding things up.
  for (const Handle& request : posted_) {
    if (request->done()) continue;
    const std::string what = "deadline passed with " + std::to_string(request->length()) +
                             " bytes (step " + std::to_string(request->tag() & 0xffffu) +
                             ") still pending with peer " + std::to_string(request->peer());
    fail_with(std::make_exception_ptr(TransportError(ErrorKind::kTimeout, what, request->peer())),
              request->peer());
  }
  fail_with(std::make_exception_ptr(
                TransportError(ErrorKind::kTimeout, "deadline passed with nothing pending")),
            -1);
}

void Exchange::fail_with(std::exception_ptr cause, int peer) {
  std::tie(cause, peer) = explain_failure(std::move(cause), peer);
  ErrorKind kind = ErrorKind::kInternal;
  std::string what;
  try {
    std::rethrow_exception(cause);
  } catch (const TransportError& error) {
    kind = error.kind();
    if (error.peer() >= 0) peer = error.peer();
    what = error.what();
  } catch (const std::exception& error) {
    what = error.what();
  } catch (...) {
    what = "unknown exception";
  }
  cancel_and_drain();
  std::string message = std::string(collective_) + " (seq " + std::to_string(seq_) + ", rank " +
                        std::to_string(rank_) + " of " + std::to_string(size_) + ") failed";
  if (peer >= 0) message += " with peer " + std::to_string(peer);
  message += ": " + std::string(transport::error_kind_name(kind)) + ": " + what;
  throw TransportError(kind, message, peer);
}

void Exchange::cancel_and_drain() noexcept {
  std::vector<Handle> pending;
  for (const Handle& request : posted_) {
    // Signature sends are left to complete: a peer that has not yet learned of the mismatch
    // needs them to fail too. They only read scratch buffers, which live as long as they do.
    const bool signature_send = std::find(signature_sends_.begin(), signature_sends_.end(),
                                          request) != signature_sends_.end();
    if (!request->done() && !signature_send) pending.push_back(request);
  }
  posted_.clear();
  if (pending.empty()) return;
  for (const Handle& request : pending) {
    try {
      request->cancel();
    } catch (...) {
      // A cancel that throws still leaves the request to the transport; the drain below decides.
    }
  }
  auto drain = [&pending](Clock::time_point until) {
    bool all_released = true;
    for (const Handle& request : pending) {
      try {
        request->wait(remaining_until(until));
      } catch (...) {
        // Failing with kCanceled is the expected outcome; only "still pending" matters.
      }
      all_released = all_released && request->done();
    }
    return all_released;
  };
  if (drain(Clock::now() + kReleaseGrace)) return;
  try {
    auto logger = layer_logger("engine");
    logger->error("{} (seq {}): canceled requests not released after {} s; aborting the transport",
                  collective_, seq_, kReleaseGrace.count());
    transport_.abort(std::string(collective_) + " could not cancel its requests");
    if (!drain(Clock::now() + kReleaseGrace)) {
      // Scratch buffers stay alive with the requests; the caller's buffer cannot be protected.
      logger->critical(
          "{} (seq {}): requests still pending after the transport abort; the transport may "
          "still access the caller's buffer",
          collective_, seq_);
    }
  } catch (...) {
    // Nothing more can be done from a noexcept path.
  }
}

}  // namespace torchwan::engine
