#include "transport/counting_transport.h"

#include <utility>

namespace torchwan::transport {

namespace {

enum class Direction { kSent, kReceived };

// Completes the caller's request from the inner one, counting first, so that whoever waits on a
// request sees its bytes in traffic() as soon as wait() returns.
void settle(TrafficCounters& counters, Request& outer, Request& inner, Direction direction,
            bool any_source) {
  if (!inner.ok()) {
    outer.fail(inner.error());
    return;
  }
  if (direction == Direction::kSent) {
    counters.count_sent(inner.peer(), inner.length());
  } else {
    counters.count_received(inner.source(), inner.length());
  }
  if (any_source) outer.set_source(inner.source());
  outer.complete_part();
}

// The caller's cancel reaches the inner request while it is pending.
void forward_cancel(Request& outer, const std::shared_ptr<Request>& inner) {
  outer.set_cancel_hook([weak = std::weak_ptr<Request>(inner)] {
    if (auto request = weak.lock()) request->cancel();
  });
}

}  // namespace

CountingTransport::CountingTransport(std::unique_ptr<Transport> inner)
    : counters_(std::make_shared<TrafficCounters>(inner->size())), inner_(std::move(inner)) {}

std::shared_ptr<Request> CountingTransport::isend(int peer, Tag tag, const void* data,
                                                  size_t length, Request::Callback callback) {
  auto outer = std::make_shared<Request>(peer, tag, length, std::move(callback));
  auto inner =
      inner_->isend(peer, tag, data, length, [counters = counters_, outer](Request& request) {
        settle(*counters, *outer, request, Direction::kSent, false);
      });
  forward_cancel(*outer, inner);
  return outer;
}

std::shared_ptr<Request> CountingTransport::irecv(int peer, Tag tag, void* data, size_t length,
                                                  Request::Callback callback) {
  auto outer = std::make_shared<Request>(peer, tag, length, std::move(callback));
  auto inner =
      inner_->irecv(peer, tag, data, length, [counters = counters_, outer](Request& request) {
        settle(*counters, *outer, request, Direction::kReceived, false);
      });
  forward_cancel(*outer, inner);
  return outer;
}

std::shared_ptr<Request> CountingTransport::irecv_any(Tag tag, void* data, size_t length,
                                                      Request::Callback callback) {
  auto outer = std::make_shared<Request>(kAnySource, tag, length, std::move(callback));
  auto inner =
      inner_->irecv_any(tag, data, length, [counters = counters_, outer](Request& request) {
        settle(*counters, *outer, request, Direction::kReceived, true);
      });
  forward_cancel(*outer, inner);
  return outer;
}

}  // namespace torchwan::transport
