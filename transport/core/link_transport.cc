#include "transport/core/link_transport.h"

#include <pthread.h>
#include <signal.h>

#include <chrono>
#include <utility>

#include "base/log.h"
#include "transport/core/lane_set.h"
#include "transport/request_arguments.h"

namespace torchwan::transport::core {

namespace {

// How long abort() waits for the progress thread to fail the pending requests.
constexpr std::chrono::milliseconds kAbortWait{5000};

// "transport aborted: ..." or "rank 3 is lost (...)": why the peer table refuses a request.
std::string refusal_reason(const Failure& refusal, int peer) {
  if (refusal.kind == ErrorKind::kAborted) return "transport aborted: " + refusal.message;
  return "rank " + std::to_string(peer) + " is lost (" + refusal.message + ")";
}

}  // namespace

LinkTransport::LinkTransport(std::string name, std::string who, const TransportOptions& options,
                             Store& store, int rank, int size, LinkFactory make_link)
    : name_(std::move(name)),
      who_(std::move(who)),
      options_(options),
      rank_(rank),
      size_(size),
      peers_(size > 0 ? size : 1),
      inbox_(std::make_shared<Inbox>()) {
  if (size < 1 || size > 65535 || rank < 0 || rank >= size) {
    throw TransportError(ErrorKind::kInvalidArgument, who_ + ": rank " + std::to_string(rank) +
                                                          " / size " + std::to_string(size) +
                                                          " is invalid (size at most 65535)");
  }
  try {
    options_.validate();
  } catch (const std::invalid_argument& error) {
    throw TransportError(ErrorKind::kInvalidArgument, who_ + ": " + error.what());
  }
  std::promise<void> made;
  std::future<void> link_made = made.get_future();
  progress_thread_ =
      std::thread([this, &store, &make_link, &made] { run(store, make_link, made); });
  progress_thread_id_ = progress_thread_.get_id();
  try {
    link_made.get();
  } catch (...) {
    progress_thread_.join();
    throw;
  }
}

LinkTransport::~LinkTransport() {
  inbox_->commands.push(StopCommand{});
  if (progress_thread_.joinable()) progress_thread_.join();
}

// ---------------------------------------------------------------------------------------------
// User threads

std::exception_ptr LinkTransport::request_error(ErrorKind kind, bool is_send, int peer, Tag tag,
                                                size_t length, const std::string& outcome) const {
  return std::make_exception_ptr(TransportError(
      kind, who_ + ": " + describe_message(is_send, peer, tag, length) + " " + outcome, peer));
}

std::shared_ptr<Request> LinkTransport::post(Posting posting) {
  check_request_arguments(who_, rank_, size_, posting);
  const bool is_send = posting.is_send();
  auto request = std::make_shared<Request>(posting.peer, posting.tag, posting.length,
                                           std::move(posting.callback));
  // A receive from a rank that left in order goes to the link, which may still hold what it sent
  // before leaving.
  if (std::optional<Failure> refusal = peers_.refusal(posting.peer, is_send)) {
    request->fail(request_error(refusal->kind, is_send, posting.peer, posting.tag, posting.length,
                                "refused: " + refusal_reason(*refusal, posting.peer)));
    return request;
  }
  const uint64_t id = next_request_id_.fetch_add(1);
  // The hook holds the inbox weakly: a request may outlive its transport.
  request->set_cancel_hook([inbox = std::weak_ptr<Inbox>(inbox_), id] {
    if (auto alive = inbox.lock()) alive->commands.push(CancelCommand{id});
  });
  auto* data = static_cast<uint8_t*>(posting.data);
  Command command =
      is_send
          ? Command(PostedSend{request, id, posting.peer, posting.tag, data, posting.length})
          : Command(PostedReceive{request, id, posting.peer, posting.tag, data, posting.length});
  if (!inbox_->commands.push(std::move(command))) {
    request->fail(request_error(ErrorKind::kAborted, is_send, posting.peer, posting.tag,
                                posting.length, "refused: the transport is shutting down"));
  }
  return request;
}

void LinkTransport::abort(const std::string& reason) {
  Failure failure{ErrorKind::kAborted, who_ + " was aborted: " + reason};
  if (!peers_.abort(failure)) return;  // aborted (or left) before: the first failure stays
  auto applied = std::make_shared<std::promise<void>>();
  std::future<void> done = applied->get_future();
  if (!inbox_->commands.push(AbortCommand{std::move(failure), reason, std::move(applied)})) {
    return;
  }
  // On the progress thread (a callback or failure handler) the link is mid-round: the abort runs
  // as its next command instead of waiting for itself.
  if (on_progress_thread()) return;
  if (done.wait_for(kAbortWait) != std::future_status::ready) {
    layer_logger("transport")
        ->warn("{}: abort did not finish within {} ms", who_, kAbortWait.count());
  }
}

void LinkTransport::set_peer_failure_handler(PeerFailureHandler handler) {
  peers_.set_failure_handler(std::move(handler));
}

// ---------------------------------------------------------------------------------------------
// The progress thread

void LinkTransport::run(Store& store, LinkFactory& make_link, std::promise<void>& made) {
  // Signals belong to the application's threads: one landing here would interrupt the link's
  // sleep and library calls with EINTR.
  sigset_t all;
  sigfillset(&all);
  pthread_sigmask(SIG_BLOCK, &all, nullptr);

  std::unique_ptr<Link> link;
  try {
    LinkSetup setup{options_,
                    store,
                    rank_,
                    size_,
                    peers_,
                    inbox_->wakeup,
                    std::chrono::steady_clock::now() + options_.connect_timeout};
    link = make_link(setup);
    rungs_ = link->rungs();
  } catch (...) {
    inbox_->commands.close();
    link.reset();  // closes what was opened before the promise releases the constructor
    made.set_exception(std::current_exception());
    return;
  }
  made.set_value();

  for (bool running = true; running;) {
    try {
      running = run_commands(*link);
      if (running) link->advance();
    } catch (const std::exception& error) {
      // Never leave requests hanging: fail them all, and keep answering commands until stopped.
      const Failure failure{ErrorKind::kInternal,
                            who_ + ": progress thread failed: " + error.what()};
      layer_logger("transport")->critical("{}", failure.message);
      peers_.abort(failure);
      try {
        link->abort(failure, failure.message);
      } catch (const std::exception& again) {
        layer_logger("transport")->critical("{}: abort failed too: {}", who_, again.what());
      }
    }
  }
  // Whatever was queued before the close still starts: a send posted just before the destructor
  // is delivered like any other; later posts fail at once.
  inbox_->commands.close();
  try {
    run_commands(*link);
    link->leave();
  } catch (const std::exception& error) {
    layer_logger("transport")->critical("{}: leaving failed: {}", who_, error.what());
  }
}

bool LinkTransport::run_commands(Link& link) {
  // Cleared before the take: a command pushed from now on is either taken or leaves it signalled.
  inbox_->wakeup.clear();
  bool running = true;
  for (Command& command : inbox_->commands.take_all()) {
    if (std::holds_alternative<StopCommand>(command)) {
      running = false;
      continue;
    }
    run_command(link, command);
  }
  return running;
}

bool LinkTransport::refused(const std::shared_ptr<Request>& request, bool is_send, int peer,
                            Tag tag, size_t length) const {
  // The peer may have been lost, or the transport aborted, since the request was posted.
  const std::optional<Failure> refusal = peers_.refusal(peer, is_send);
  if (!refusal) return false;
  request->fail(request_error(refusal->kind, is_send, peer, tag, length,
                              "not started: " + refusal_reason(*refusal, peer)));
  return true;
}

void LinkTransport::run_command(Link& link, Command& command) {
  if (auto* send = std::get_if<PostedSend>(&command)) {
    if (refused(send->request, /*is_send=*/true, send->peer, send->tag, send->length)) return;
    link.start_send(std::move(*send));
  } else if (auto* receive = std::get_if<PostedReceive>(&command)) {
    if (refused(receive->request, /*is_send=*/false, receive->peer, receive->tag,
                receive->length)) {
      return;
    }
    link.start_receive(std::move(*receive));
  } else if (auto* cancel = std::get_if<CancelCommand>(&command)) {
    link.cancel(cancel->id);
  } else if (auto* abort = std::get_if<AbortCommand>(&command)) {
    layer_logger("transport")->warn("{}", abort->failure.message);
    link.abort(abort->failure, abort->reason);
    abort->applied->set_value();
  }
}

}  // namespace torchwan::transport::core
