// The requests one collective call has in flight, and the engine's error policy for them.
//
// Every algorithm posts its sends and receives through an Exchange. If any request fails, or the
// call's deadline passes, the Exchange cancels every request it still has outstanding, waits
// (bounded) for the transport to give their buffers back, and throws a TransportError that names
// the collective, the peer and the cause, keeping the original error kind and peer. The destructor
// does the same cancel-and-drain, so a collective never returns (normally or by exception) while
// the transport may still touch the caller's buffers or the algorithm's temporaries. If canceled
// requests are not released within a grace period (UCX cannot cancel a send), the Exchange aborts
// the transport, which fails everything pending: a failed collective may cost the transport.
#pragma once

#include <chrono>
#include <condition_variable>
#include <cstddef>
#include <cstdint>
#include <exception>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "csrc/collectives.h"
#include "transport/request.h"

namespace torchwan::engine {

class Exchange {
 public:
  using Handle = std::shared_ptr<transport::Request>;

  // `collective` names the call in error messages ("allreduce", ...).
  Exchange(const CollectiveContext& ctx, const char* collective);
  ~Exchange();
  Exchange(const Exchange&) = delete;
  Exchange& operator=(const Exchange&) = delete;

  int rank() const { return rank_; }
  int size() const { return size_; }

  // Posts a message tagged collective_tag(seq, step). `step` is taken modulo 2^16: a reused tag
  // is safe as long as both ends post their messages of one (peer, tag) in the same order,
  // because the transport matches those in order.
  Handle send(int peer, uint32_t step, const void* data, size_t bytes);
  Handle recv(int peer, uint32_t step, void* data, size_t bytes);

  // True once `request` has completed (a null handle counts as completed). Throws, after
  // canceling everything, if it failed.
  bool finished(const Handle& request);
  // Blocks until `request` completes; throws on failure or when the deadline passes.
  void wait(const Handle& request);
  // Blocks until every request posted so far has completed.
  void wait_all();

  // Event counting for algorithms that keep many requests in flight: read completions(), check
  // the requests, and if none could make progress call wait_for_completion() with the value read;
  // it returns once any request has completed since (no wake-up is lost between the two).
  uint64_t completions() const;
  void wait_for_completion(uint64_t seen);

  // An uninitialised temporary buffer for the algorithm. It is freed only once this Exchange is
  // gone and every request it posted has completed or been destroyed by the transport, so even
  // a transport that never releases a canceled request cannot write into freed memory.
  uint8_t* scratch(size_t bytes);

 private:
  // Shared with every request's completion callback (which runs on the transport's progress
  // thread), so a late callback never touches a destroyed Exchange, and the scratch buffers live
  // until the last request holding the callback lets go of it.
  struct SharedState {
    std::mutex mutex;
    std::condition_variable changed;
    uint64_t completions = 0;                         // bumped by every completion callback
    std::vector<std::unique_ptr<uint8_t[]>> scratch;  // touched only by the Exchange's thread
  };

  Handle post(bool is_send, int peer, uint32_t step, void* data, size_t bytes);
  [[noreturn]] void fail_with(std::exception_ptr cause, int peer);
  [[noreturn]] void fail_deadline();
  // Cancels every request not yet completed and waits for the transport to release them.
  void cancel_and_drain() noexcept;

  transport::Transport& transport_;
  const uint32_t seq_;
  const std::chrono::steady_clock::time_point deadline_;
  const char* const collective_;
  const int rank_;
  const int size_;
  std::shared_ptr<SharedState> shared_;
  std::vector<Handle> posted_;
};

}  // namespace torchwan::engine
