#include "transport/ucx/ucx_transport.h"

#include <future>
#include <utility>

#include "base/log.h"
#include "transport/request_arguments.h"
#include "transport/ucx/ucx_engine.h"

namespace torchwan::transport {

namespace {

// How long the progress thread sleeps at most when idle; bounds how late it notices stop_.
constexpr std::chrono::milliseconds kIdleWait{100};
// How long abort() waits for the progress thread to fail the pending requests.
constexpr std::chrono::milliseconds kAbortWait{5000};

std::shared_ptr<Request> failed_request(int peer, Tag tag, size_t length,
                                        Request::Callback callback, ErrorKind kind,
                                        const std::string& message) {
  auto request = std::make_shared<Request>(peer, tag, length, std::move(callback));
  request->fail(std::make_exception_ptr(TransportError(kind, message, peer)));
  return request;
}

}  // namespace

UcxTransport::UcxTransport(const TransportOptions& options, Store& store, int rank, int size)
    : options_(options),
      rank_(rank),
      size_(size),
      peers_(size),
      commands_(std::make_shared<ucx::CommandQueue>()) {
  options_.validate();
  if (rank < 0 || rank >= size || size > 65535) {
    throw TransportError(ErrorKind::kInvalidArgument, "ucx: rank " + std::to_string(rank) +
                                                          " / size " + std::to_string(size) +
                                                          " is invalid (size at most 65535)");
  }
  std::promise<void> connected;
  std::future<void> connection = connected.get_future();
  progress_thread_ = std::thread([this, &store, &connected] { run(store, connected); });
  progress_thread_id_ = progress_thread_.get_id();
  try {
    connection.get();
  } catch (...) {
    progress_thread_.join();
    throw;
  }
}

UcxTransport::~UcxTransport() {
  stop_.store(true);
  commands_->push([](ucx::Engine&) {});  // wakes the progress thread
  if (progress_thread_.joinable()) progress_thread_.join();
}

void UcxTransport::run(Store& store, std::promise<void>& connected) {
  std::unique_ptr<ucx::Engine> engine;
  try {
    const auto deadline = std::chrono::steady_clock::now() + options_.connect_timeout;
    engine = std::make_unique<ucx::Engine>(options_, rank_, size_, peers_);
    engine->watch_fd(commands_->wakeup_fd());
    links_ = engine->connect(store, deadline);
  } catch (...) {
    commands_->close();
    engine.reset();  // closes what was opened before the promise releases the constructor
    connected.set_exception(std::current_exception());
    return;
  }
  connected.set_value();

  while (!stop_.load()) {
    for (auto& command : commands_->take_all()) command(*engine);
    if (!engine->progress()) engine->wait_for_event(kIdleWait);
  }
  // Whatever was queued before the close still runs: a send posted just before the destructor
  // is delivered like any other (shutdown waits for it), a receive fails with kAborted.
  commands_->close();
  for (auto& command : commands_->take_all()) command(*engine);
  engine->shutdown();
}

std::shared_ptr<Request> UcxTransport::post(Posting posting) {
  check_request_arguments(who(), rank_, size_, posting);
  return submit(posting.is_send(), posting.peer, posting.tag, posting.data, posting.length,
                std::move(posting.callback));
}

std::shared_ptr<Request> UcxTransport::submit(bool is_send, int peer, Tag tag, void* data,
                                              size_t length, Request::Callback callback) {
  const char* direction = is_send ? "send to" : "receive from";
  const std::string who = peer == kAnySource ? "any rank" : "rank " + std::to_string(peer);
  const std::string what = std::string(direction) + " " + who + " (tag " + std::to_string(tag) +
                           ", " + std::to_string(length) + " bytes)";
  // A receive from a rank that left in order goes to the engine, which may still hold what it
  // sent before leaving.
  if (std::optional<core::Failure> refusal = peers_.refusal(peer, is_send)) {
    const bool aborted = refusal->kind == ErrorKind::kAborted;
    return failed_request(
        peer, tag, length, std::move(callback), refusal->kind,
        "ucx: " + what + " refused: " +
            (aborted ? "transport aborted: " + refusal->message
                     : "rank " + std::to_string(peer) + " is lost (" + refusal->message + ")"));
  }

  auto request = std::make_shared<Request>(peer, tag, length, std::move(callback));
  const uint64_t id = next_transfer_id_.fetch_add(1);
  // The hook holds the queue weakly: a request may outlive its transport.
  request->set_cancel_hook([queue = std::weak_ptr<ucx::CommandQueue>(commands_), id] {
    if (auto commands = queue.lock()) {
      commands->push([id](ucx::Engine& engine) { engine.cancel(id); });
    }
  });
  ucx::TransferSpec spec{id, request, is_send, peer, tag, static_cast<uint8_t*>(data), length};
  if (!commands_->push([spec = std::move(spec)](ucx::Engine& engine) mutable {
        engine.start(std::move(spec));
      })) {
    request->fail(std::make_exception_ptr(TransportError(
        ErrorKind::kAborted, "ucx: " + what + " refused: the transport is shutting down", peer)));
  }
  return request;
}

void UcxTransport::abort(const std::string& reason) {
  peers_.abort({ErrorKind::kAborted, reason});
  if (on_progress_thread()) {
    // Called from a completion callback or failure handler: the engine is mid-round, so the
    // abort runs as the next command instead of waiting for itself.
    commands_->push([reason](ucx::Engine& engine) { engine.abort(reason); });
    return;
  }
  auto applied = std::make_shared<std::promise<void>>();
  std::future<void> done = applied->get_future();
  if (commands_->push([reason, applied](ucx::Engine& engine) {
        engine.abort(reason);
        applied->set_value();
      })) {
    if (done.wait_for(kAbortWait) != std::future_status::ready) {
      layer_logger("transport")->warn("ucx: abort did not finish within {} ms", kAbortWait.count());
    }
  }
}

void UcxTransport::set_peer_failure_handler(PeerFailureHandler handler) {
  peers_.set_failure_handler(std::move(handler));
}

}  // namespace torchwan::transport
