// A pending send or receive. Shared by every transport implementation: a request may be split into
// several parts (stripes over lanes, chunks) and completes when all of them have, or fails at the
// first error. Completion callbacks run on the transport's progress thread and must not block.
#pragma once

#include <chrono>
#include <condition_variable>
#include <cstddef>
#include <cstdint>
#include <exception>
#include <functional>
#include <mutex>

namespace torchwan::transport {

// Message tags. The top 16 bits are reserved for the transport (it carries the source rank there),
// so a user tag must be below kMaxTag.
using Tag = uint64_t;
inline constexpr Tag kMaxTag = Tag{1} << 48;

// The peer of a receive that accepts a message from any rank (Transport::irecv_any).
inline constexpr int kAnySource = -1;

inline constexpr std::chrono::milliseconds kNoTimeout = std::chrono::milliseconds::max();

class Request {
 public:
  using Callback = std::function<void(Request&)>;

  Request(int peer, Tag tag, size_t length, Callback callback = {});
  Request(const Request&) = delete;
  Request& operator=(const Request&) = delete;

  // The rank named when posting; kAnySource for an any-source receive.
  int peer() const { return peer_; }
  // The rank the message came from (or goes to): peer() for an exact request; for an any-source
  // receive, kAnySource until the transport has matched it to a message, then the sender.
  int source() const;
  Tag tag() const { return tag_; }
  size_t length() const { return length_; }

  bool done() const;
  // True once completed without error.
  bool ok() const;
  std::exception_ptr error() const;
  // Blocks until done; rethrows the request's error; throws TransportError(kTimeout) after
  // `timeout` (the request itself stays pending: cancel it if it should not go on).
  void wait(std::chrono::milliseconds timeout = kNoTimeout);
  // Asks the transport to give the buffer back; the request then fails with kCanceled.
  void cancel();

  // --- for transport implementations ---
  // Sets how many parts must complete. Call before the first part can complete.
  void expect_parts(int parts);
  void complete_part();
  // The first failure wins; later completions and failures are ignored.
  void fail(std::exception_ptr error);
  void set_cancel_hook(std::function<void()> hook);
  // For a request completed from `inner` (a decorator's): cancel() reaches `inner`, which then
  // fails this one. Holds `inner` weakly, so a finished inner request is not kept alive.
  void forward_cancel_to(const std::shared_ptr<Request>& inner);
  // Records the sender an any-source receive was matched to; call before completing it.
  void set_source(int source);

 private:
  void finish_locked(std::unique_lock<std::mutex>& lock);

  const int peer_;
  int source_;
  const Tag tag_;
  const size_t length_;
  Callback callback_;
  std::function<void()> cancel_hook_;
  mutable std::mutex mutex_;
  std::condition_variable done_cv_;
  int parts_left_ = 1;
  bool done_ = false;
  std::exception_ptr error_;
};

}  // namespace torchwan::transport
