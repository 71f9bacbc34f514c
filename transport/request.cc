#include "transport/request.h"

#include <string>
#include <utility>

#include "transport/errors.h"

namespace torchwan::transport {
namespace {

// A copy of `error` that shares no storage with it. The original is created and finally released
// on the progress thread; the reference count of std::exception_ptr lives in libstdc++, whose
// atomics ThreadSanitizer cannot see, so a caller that read the shared object and the progress
// thread that later frees it look unordered. Copying under the request's mutex gives the caller an
// object of its own and orders the only cross-thread read by that mutex.
std::exception_ptr private_copy(const std::exception_ptr& error) {
  if (!error) return error;
  try {
    std::rethrow_exception(error);
  } catch (const TransportError& transport_error) {
    return std::make_exception_ptr(TransportError(transport_error));
  } catch (...) {
    return error;  // not ours: its type may not be copyable here
  }
}

}  // namespace

Request::Request(int peer, Tag tag, size_t length, Callback callback)
    : peer_(peer), source_(peer), tag_(tag), length_(length), callback_(std::move(callback)) {}

int Request::source() const {
  std::lock_guard<std::mutex> lock(mutex_);
  return source_;
}

void Request::set_source(int source) {
  std::lock_guard<std::mutex> lock(mutex_);
  source_ = source;
}

bool Request::done() const {
  std::lock_guard<std::mutex> lock(mutex_);
  return done_;
}

bool Request::ok() const {
  std::lock_guard<std::mutex> lock(mutex_);
  return done_ && !error_;
}

std::exception_ptr Request::error() const {
  std::lock_guard<std::mutex> lock(mutex_);
  return private_copy(error_);
}

void Request::wait(std::chrono::milliseconds timeout) {
  std::unique_lock<std::mutex> lock(mutex_);
  auto is_done = [&] { return done_; };
  if (timeout == kNoTimeout) {
    done_cv_.wait(lock, is_done);
  } else if (!done_cv_.wait_for(lock, timeout, is_done)) {
    throw TransportError(ErrorKind::kTimeout,
                         "request (peer " + std::to_string(peer_) + ", tag " +
                             std::to_string(tag_) + ", " + std::to_string(length_) +
                             " bytes) did not complete within " + std::to_string(timeout.count()) +
                             " ms",
                         peer_);
  }
  if (!error_) return;
  std::exception_ptr error = private_copy(error_);
  lock.unlock();
  std::rethrow_exception(error);
}

void Request::cancel() {
  std::function<void()> hook;
  {
    std::lock_guard<std::mutex> lock(mutex_);
    if (done_) return;
    hook = cancel_hook_;
  }
  if (hook) {
    hook();
  } else {
    fail(std::make_exception_ptr(
        TransportError(ErrorKind::kCanceled, "request canceled by its owner", peer_)));
  }
}

void Request::expect_parts(int parts) {
  std::unique_lock<std::mutex> lock(mutex_);
  parts_left_ = parts;
  if (parts_left_ <= 0 && !done_) finish_locked(lock);
}

void Request::complete_part() {
  std::unique_lock<std::mutex> lock(mutex_);
  if (done_) return;
  if (--parts_left_ <= 0) finish_locked(lock);
}

void Request::fail(std::exception_ptr error) {
  std::unique_lock<std::mutex> lock(mutex_);
  if (done_) return;
  error_ = std::move(error);
  finish_locked(lock);
}

void Request::set_cancel_hook(std::function<void()> hook) {
  std::lock_guard<std::mutex> lock(mutex_);
  cancel_hook_ = std::move(hook);
}

void Request::forward_cancel_to(const std::shared_ptr<Request>& inner) {
  set_cancel_hook([weak = std::weak_ptr<Request>(inner)] {
    if (auto request = weak.lock()) request->cancel();
  });
}

void Request::finish_locked(std::unique_lock<std::mutex>& lock) {
  done_ = true;
  Callback callback = std::move(callback_);
  cancel_hook_ = nullptr;
  lock.unlock();
  done_cv_.notify_all();
  // Runs after the waiters are released: a callback may drop the last reference to this request.
  if (callback) callback(*this);
}

}  // namespace torchwan::transport
