// The UCX data plane: the core's LinkTransport (transport/core/link_transport.h: argument checks,
// the command mailbox and one progress thread) over UCX's link (ucx_engine.h), which owns every
// UCX object and sleeps in epoll when there is nothing to do.
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

#include "transport/core/link_transport.h"

namespace torchwan::transport {

class UcxTransport final : public core::LinkTransport {
 public:
  // Returns once every peer answered on every lane; throws TransportError(kBootstrap) naming the
  // ranks that did not within options.connect_timeout.
  UcxTransport(const TransportOptions& options, Store& store, int rank, int size);
};

}  // namespace torchwan::transport
