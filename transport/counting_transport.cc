#include "transport/counting_transport.h"

#include <utility>

namespace torchwan::transport {

namespace {

enum class Direction { kSent, kReceived };

// Returns the caller's request for a message `post` hands to the inner transport (with the
// callback it is given). The caller's request completes from the inner one, counting first, so
// that whoever waits on it sees its bytes in traffic() as soon as wait() returns; a cancel
// reaches the inner request while it is pending.
template <typename Post>
std::shared_ptr<Request> tracked(const std::shared_ptr<TrafficCounters>& counters, int peer,
                                 Tag tag, size_t length, Request::Callback callback,
                                 Direction direction, Post post) {
  auto outer = std::make_shared<Request>(peer, tag, length, std::move(callback));
  std::shared_ptr<Request> inner =
      post([counters, outer, direction, any_source = peer == kAnySource](Request& request) {
        if (!request.ok()) {
          outer->fail(request.error());
          return;
        }
        if (direction == Direction::kSent) {
          counters->count_sent(request.peer(), request.length());
        } else {
          counters->count_received(request.source(), request.length());
        }
        if (any_source) outer->set_source(request.source());
        outer->complete_part();
      });
  outer->forward_cancel_to(inner);
  return outer;
}

}  // namespace

CountingTransport::CountingTransport(std::unique_ptr<Transport> inner)
    : ForwardingTransport(std::move(inner)),
      counters_(std::make_shared<TrafficCounters>(inner_->size())) {}

std::shared_ptr<Request> CountingTransport::isend(int peer, Tag tag, const void* data,
                                                  size_t length, Request::Callback callback) {
  return tracked(counters_, peer, tag, length, std::move(callback), Direction::kSent,
                 [&](Request::Callback done) {
                   return inner_->isend(peer, tag, data, length, std::move(done));
                 });
}

std::shared_ptr<Request> CountingTransport::irecv(int peer, Tag tag, void* data, size_t length,
                                                  Request::Callback callback) {
  return tracked(counters_, peer, tag, length, std::move(callback), Direction::kReceived,
                 [&](Request::Callback done) {
                   return inner_->irecv(peer, tag, data, length, std::move(done));
                 });
}

std::shared_ptr<Request> CountingTransport::irecv_any(Tag tag, void* data, size_t length,
                                                      Request::Callback callback) {
  return tracked(counters_, kAnySource, tag, length, std::move(callback), Direction::kReceived,
                 [&](Request::Callback done) {
                   return inner_->irecv_any(tag, data, length, std::move(done));
                 });
}

}  // namespace torchwan::transport
