// The UCX data plane. User threads validate a call and queue it; one progress thread owns every
// UCX object (see ucx_engine.h) and runs the queued commands between rounds of progress, sleeping
// in epoll when there is nothing to do.
//
// irecv_any: the engine keeps any-source receives pending and, after every round of progress,
// probes (without removing) UCX's unexpected queue of the lane that carries the message's first
// piece, ignoring the source bits of the tag. The oldest message found names its sender, and the
// receive then becomes an exact receive from it, posted at once, so it takes that very message.
// The rule: a message goes to an exact receive that is posted when it arrives (UCX matches those
// on arrival); otherwise to the oldest pending any-source receive with its tag, at the next
// progress round, unless an exact receive for it is posted first. Messages from one sender stay
// in order. A stale message from a peer since lost, if it is the oldest with its tag, fails the
// any-source receive that finds it as a receive from a lost peer.
#pragma once

#include <atomic>
#include <future>
#include <memory>
#include <string>
#include <thread>

#include "transport/core/peer_table.h"
#include "transport/transport.h"
#include "transport/ucx/ucx_command_queue.h"

namespace torchwan::transport {

class UcxTransport final : public Transport {
 public:
  // Returns once every peer answered on every lane; throws TransportError(kBootstrap) naming the
  // ranks that did not within options.connect_timeout.
  UcxTransport(const TransportOptions& options, Store& store, int rank, int size);
  // Fails whatever is pending with kAborted and closes every connection, within a few seconds
  // even when peers are gone.
  ~UcxTransport() override;

  int rank() const override { return rank_; }
  int size() const override { return size_; }
  std::string name() const override { return "ucx"; }
  const TransportOptions& options() const override { return options_; }

  std::shared_ptr<Request> post(Posting posting) override;
  void abort(const std::string& reason) override;
  void set_peer_failure_handler(PeerFailureHandler handler) override;
  std::vector<LinkRung> links() const override { return links_; }

 private:
  std::shared_ptr<Request> submit(bool is_send, int peer, Tag tag, void* data, size_t length,
                                  Request::Callback callback);
  // How this transport names itself in an error: "ucx rank 3".
  std::string who() const { return "ucx rank " + std::to_string(rank_); }
  // The progress thread: connects, then runs commands and progress until stop_.
  void run(Store& store, std::promise<void>& connected);
  bool on_progress_thread() const { return std::this_thread::get_id() == progress_thread_id_; }

  const TransportOptions options_;
  const int rank_;
  const int size_;
  core::PeerTable peers_;
  std::shared_ptr<ucx::CommandQueue> commands_;
  std::atomic<uint64_t> next_transfer_id_{1};
  std::atomic<bool> stop_{false};
  std::vector<LinkRung> links_;  // written by connect() before the constructor returns
  std::thread::id progress_thread_id_;
  std::thread progress_thread_;
};

}  // namespace torchwan::transport
