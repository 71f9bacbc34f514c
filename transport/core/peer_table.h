// Which peers a link can still talk to, shared by both links: whether the transport was aborted,
// which peers are lost and which of them departed in order, each with one Failure that says why,
// and the one place that calls the peer failure handler. The progress thread writes it; user
// threads read it, so isend/irecv naming a lost peer fail at once without asking that thread.
#pragma once

#include <exception>
#include <functional>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "transport/errors.h"

namespace torchwan::transport::core {

// Why a peer, or the whole transport, is gone: the error kind, the text requests fail with, and
// the rank blamed (-1 for the whole transport).
struct Failure {
  ErrorKind kind = ErrorKind::kPeerLost;
  std::string message;
  int peer = -1;

  // The error a request meeting this failure fails with.
  std::exception_ptr error() const {
    return std::make_exception_ptr(TransportError(kind, message, peer));
  }
};

class PeerTable {
 public:
  using FailureHandler = std::function<void(int peer, const std::string& reason)>;

  explicit PeerTable(int size);

  // Returns false when the transport had already been aborted (the first failure stays).
  bool abort(Failure failure);
  std::optional<Failure> aborted() const;

  // Returns false when `peer` had already been lost (the first failure stays).
  bool lose(int peer, Failure failure);
  std::optional<Failure> lost(int peer) const;
  bool is_lost(int peer) const { return lost(peer).has_value(); }

  // A peer that left in order: sends to it fail at once, but receives still go to the link, which
  // holds what the peer sent before leaving. Call before lose(), so a user thread that sees the
  // loss also sees the departure.
  void depart(int peer);
  bool departed(int peer) const;

  // The failure a new request naming `peer` (or kAnySource) meets at once, or nothing when it may
  // go ahead: the abort first, then the peer's loss. No single lost peer refuses an any-source
  // receive, and a departed peer does not refuse a receive.
  std::optional<Failure> refusal(int peer, bool is_send) const;

  void set_failure_handler(FailureHandler handler);
  // Tells the handler, if any, that `peer` is lost; a handler that throws is logged, not
  // propagated, since it runs on the progress thread.
  void report_lost(int peer, const std::string& reason) const;

 private:
  mutable std::mutex mutex_;
  std::optional<Failure> aborted_;
  std::vector<std::optional<Failure>> lost_;
  std::vector<bool> departed_;
  FailureHandler failure_handler_;
};

}  // namespace torchwan::transport::core
