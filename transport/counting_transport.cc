#include "transport/counting_transport.h"

#include <utility>

namespace torchwan::transport {

CountingTransport::CountingTransport(std::unique_ptr<Transport> inner)
    : ForwardingTransport(std::move(inner)),
      counters_(std::make_shared<TrafficCounters>(inner_->size())) {}

// The caller's request completes from the inner one, counting first, so that whoever waits on
// it sees its bytes in traffic() as soon as wait() returns; a cancel reaches the inner request
// while it is pending.
std::shared_ptr<Request> CountingTransport::post(Posting posting) {
  auto outer = std::make_shared<Request>(posting.peer, posting.tag, posting.length,
                                         std::move(posting.callback));
  posting.callback = [counters = counters_, outer, is_send = posting.is_send(),
                      any_source = posting.peer == kAnySource](Request& request) {
    if (!request.ok()) {
      outer->fail(request.error());
      return;
    }
    if (is_send) {
      counters->count_sent(request.peer(), request.length());
    } else {
      counters->count_received(request.source(), request.length());
    }
    if (any_source) outer->set_source(request.source());
    outer->complete_part();
  };
  outer->forward_cancel_to(inner_->post(std::move(posting)));
  return outer;
}

}  // namespace torchwan::transport
