// The transport both links stand on: one progress thread per transport, which alone touches the
// link, fed through one command mailbox. User threads check a call's arguments, meet the peer
// table's refusal at once when the peer is lost or the transport aborted, and otherwise queue a
// command with a request id that the request's cancel hook names. The loop runs the queued
// commands between rounds of the link's progress (see link.h for what a link does).
//
// Lifecycle: the constructor starts the thread, which makes the link (connection setup runs on the
// thread that will own the link) and returns once it is made, or rethrows why not. abort() fails
// everything pending and, unless called on the progress thread (from a callback or a failure
// handler), returns once the link applied it. The destructor stops the loop: commands queued
// before still start (a send posted just before destruction is delivered like any other), later
// ones fail at once, and the link leaves (link.h). An exception escaping a round of progress fails
// every pending request and aborts the transport instead of leaving them hanging.
#pragma once

#include <atomic>
#include <functional>
#include <future>
#include <memory>
#include <string>
#include <thread>
#include <variant>
#include <vector>

#include "transport/core/link.h"
#include "transport/core/mailbox.h"
#include "transport/core/peer_table.h"
#include "transport/transport.h"

namespace torchwan::transport::core {

using LinkFactory = std::function<std::unique_ptr<Link>(LinkSetup& setup)>;

class LinkTransport : public Transport {
 public:
  // `name`: the transport's name() ("ucx", "zmq"); `who`: how it names itself in messages
  // ("ucx rank 3"). Throws TransportError(kInvalidArgument) for an invalid rank, size or option,
  // and whatever `make_link` throws (TransportError(kBootstrap) when peers do not answer).
  LinkTransport(std::string name, std::string who, const TransportOptions& options, Store& store,
                int rank, int size, LinkFactory make_link);
  ~LinkTransport() override;
  LinkTransport(const LinkTransport&) = delete;
  LinkTransport& operator=(const LinkTransport&) = delete;

  int rank() const override { return rank_; }
  int size() const override { return size_; }
  std::string name() const override { return name_; }
  const TransportOptions& options() const override { return options_; }

  std::shared_ptr<Request> post(Posting posting) override;
  void abort(const std::string& reason) override;
  void set_peer_failure_handler(PeerFailureHandler handler) override;
  std::vector<LinkRung> links() const override { return rungs_; }

 private:
  struct CancelCommand {
    uint64_t id;
  };
  struct AbortCommand {
    Failure failure;
    std::string reason;
    std::shared_ptr<std::promise<void>> applied;  // set once the link applied it
  };
  struct StopCommand {};
  using Command = std::variant<PostedSend, PostedReceive, CancelCommand, AbortCommand, StopCommand>;
  // Shared with cancel hooks (weakly), which may outlive the transport.
  struct Inbox {
    Wakeup wakeup;
    Mailbox<Command> commands{wakeup};
  };

  // The progress thread: makes the link, then runs commands and rounds of progress until stopped.
  void run(Store& store, LinkFactory& make_link, std::promise<void>& made);
  // Runs what the mailbox holds; false once a StopCommand came.
  bool run_commands(Link& link);
  void run_command(Link& link, Command& command);
  // "<who>: <what the request was> <outcome>", as every request this transport fails reads.
  std::exception_ptr request_error(ErrorKind kind, bool is_send, int peer, Tag tag, size_t length,
                                   const std::string& outcome) const;
  // Fails `request` when the peer table refuses its peer; true when it did.
  bool refused(const std::shared_ptr<Request>& request, bool is_send, int peer, Tag tag,
               size_t length) const;
  bool on_progress_thread() const { return std::this_thread::get_id() == progress_thread_id_; }

  const std::string name_;
  const std::string who_;
  TransportOptions options_;
  const int rank_;
  const int size_;
  PeerTable peers_;
  std::shared_ptr<Inbox> inbox_;
  std::atomic<uint64_t> next_request_id_{1};
  std::vector<LinkRung> rungs_;  // written by the progress thread before the constructor returns
  std::thread::id progress_thread_id_;
  std::thread progress_thread_;
};

}  // namespace torchwan::transport::core
