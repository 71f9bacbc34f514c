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
//
// Call signatures: when the context carries one, the constructor posts, before any algorithm
// traffic, a send of this rank's encoded signature to every peer and a receive of every peer's,
// all with the reserved step kSignatureStep. Each is checked as soon as it arrives (whenever the
// algorithm waits), so a mismatch fails the call at once even when the data can never match; an
// error that a mismatch can cause (a size mismatch, a canceled message) is reported as the
// mismatch when the signatures show one. finish() waits for the whole exchange, so a call never
// returns normally without having checked every peer. The reserved step may also be used by an
// algorithm's unit numbers modulo 2^16; that is safe because the signature messages are posted
// first on both ends of every (peer, tag), and the transport matches those in order. A failed
// call does not cancel its signature sends (peers still need them to fail too); they complete when
// the peer enters the call, or stay with the transport if it never does.
//
// Subgroups: a composite algorithm (hierarchical allreduce) runs the ordinary algorithms one phase
// at a time over ordered subsets of the ranks. While a Subgroup scope is open, rank(), size() and
// the peers passed to send()/recv() are positions in that subset, and steps are confined to the
// phase's own range, so the messages of two phases never share a tag even when the same pair of
// ranks talks in both. Outside a scope (the flat path) nothing is translated.
#pragma once

#include <chrono>
#include <condition_variable>
#include <cstddef>
#include <cstdint>
#include <exception>
#include <memory>
#include <mutex>
#include <span>
#include <string>
#include <utility>
#include <vector>

#include "csrc/collectives.h"
#include "csrc/scratch_pool.h"
#include "csrc/signature.h"
#include "transport/request.h"

namespace torchwan::engine {

class Exchange {
 public:
  using Handle = std::shared_ptr<transport::Request>;

  // Bytes this rank sends to and receives from each rank, for calls whose per-rank counts differ
  // (alltoallv): the signature check then compares them pairwise instead of the counts.
  struct PairBytes {
    std::span<const size_t> send;
    std::span<const size_t> recv;
  };
  static constexpr uint32_t kSignatureStep = 0xffff;
  // A subgroup phase p uses steps [p * kPhaseSteps, (p + 1) * kPhaseSteps); an algorithm's steps
  // wrap modulo kPhaseSteps, which is safe for the same reason as wrapping modulo 2^16 (see send).
  // Phases below kMaxPhases never reach kSignatureStep.
  static constexpr uint32_t kPhaseSteps = 0x4000;
  static constexpr uint32_t kMaxPhases = 3;

  // While alive, `ex` addresses the ranks `members` (global ranks in the subgroup's order, which
  // must include this rank and outlive the scope) by position, in step range `phase`. Scopes do not
  // nest. Requests posted inside stay owned by the Exchange (deadline, cancel, error policy).
  class Subgroup {
   public:
    Subgroup(Exchange& ex, std::span<const int> members, uint32_t phase);
    ~Subgroup();
    Subgroup(const Subgroup&) = delete;
    Subgroup& operator=(const Subgroup&) = delete;

   private:
    Exchange& ex_;
  };

  // `collective` names the call in error messages ("allreduce", ...). Starts the signature check
  // when ctx.signature is set (and there is more than one rank).
  Exchange(const CollectiveContext& ctx, const char* collective, PairBytes pair_bytes = {});
  ~Exchange();
  Exchange(const Exchange&) = delete;
  Exchange& operator=(const Exchange&) = delete;

  // This rank's position and the rank count of the current subgroup (the whole group outside a
  // Subgroup scope).
  int rank() const { return group_rank_; }
  int size() const { return group_size_; }

  // Posts a message tagged collective_tag(seq, step) to `peer`, a position in the current
  // subgroup. `step` is taken modulo 2^16 (modulo kPhaseSteps in a subgroup): a reused tag
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
  // Completes the signature check (a no-op without one); every collective calls it before
  // returning normally. Throws TransportError(kMismatch) when the ranks disagree.
  void finish();

  // True once every peer's signature has arrived and agrees (always true without a check);
  // throws, like wait(), as soon as one disagrees. An algorithm that writes results into the
  // caller's buffer before finish() waits for this, so a mismatched call leaves it untouched.
  bool signatures_agree();

  // Event counting for algorithms that keep many requests in flight: read completions(), check
  // the requests, and if none could make progress call wait_for_completion() with the value read;
  // it returns once any request has completed since (no wake-up is lost between the two).
  uint64_t completions() const;
  void wait_for_completion(uint64_t seen);

  // An uninitialised temporary buffer for the algorithm. It is freed only once this Exchange is
  // gone and every request it posted has completed or been destroyed by the transport, so even
  // a transport that never releases a canceled request cannot write into freed memory. Taken
  // from the context's scratch pool when it has one.
  uint8_t* scratch(size_t bytes);

 private:
  // Shared with every request's completion callback (which runs on the transport's progress
  // thread), so a late callback never touches a destroyed Exchange, and the scratch buffers live
  // until the last request holding the callback lets go of it.
  struct SharedState {
    std::mutex mutex;
    std::condition_variable changed;
    uint64_t completions = 0;                  // bumped by every completion callback
    std::vector<ScratchPool::Buffer> scratch;  // touched only by the Exchange's thread
  };

  Handle post(bool is_send, int peer, uint32_t step, void* data, size_t bytes);
  [[noreturn]] void fail_with(std::exception_ptr cause, int peer);

  // --- signature check (exchange_signature.cc) ---
  void start_signature_check(const CallSignature& signature, PairBytes pair_bytes);
  // Checks every signature that arrived since the last call; throws on a mismatch, an invalid
  // record, or a failed signature receive.
  void check_signatures();
  // The mismatch (as a kMismatch error, with the peer to blame) shown by the signatures that
  // arrived, or a null pointer.
  std::pair<std::exception_ptr, int> arrived_mismatch() const;
  // What to report for `cause`: the mismatch behind it when the signatures show one. For errors
  // a mismatch typically causes, first waits (briefly) for the signature of `peer`.
  std::pair<std::exception_ptr, int> explain_failure(std::exception_ptr cause, int peer);
  // For a signature receive from `peer` that completed: why the call must fail with kMismatch
  // (a disagreement, or a record that is not a valid signature), or empty. A receive that failed
  // for another reason than its size gives empty: that failure is reported as it is.
  std::string judge_signature(int peer) const;
  // Waits until `request` is done or `until` passes, without failing either way.
  void wait_quietly(const Handle& request, std::chrono::steady_clock::time_point until);
  [[noreturn]] void fail_deadline();
  // Cancels every request not yet completed and waits for the transport to release them.
  void cancel_and_drain() noexcept;

  transport::Transport& transport_;
  const uint32_t seq_;
  const std::chrono::steady_clock::time_point deadline_;
  const char* const collective_;
  ScratchPool* const scratch_pool_;  // may be null
  const int rank_;  // in the whole group: signatures and error messages always use these
  const int size_;
  // The current subgroup: positions map through members_ when it is non-empty.
  std::span<const int> members_;
  int group_rank_;
  int group_size_;
  uint32_t step_base_ = 0;
  uint32_t step_mask_ = 0xffff;
  std::shared_ptr<SharedState> shared_;
  std::vector<Handle> posted_;

  // Signature check state, all indexed by peer; empty without a check.
  std::vector<WireSignature> expected_;  // this rank's signature as each peer must match it
  std::vector<Handle> signature_sends_;
  std::vector<Handle> signature_recvs_;
  std::vector<uint8_t*> signature_in_;  // scratch, kSignatureBytes each
  std::vector<bool> signature_checked_;
  size_t signatures_unchecked_ = 0;
};

}  // namespace torchwan::engine
