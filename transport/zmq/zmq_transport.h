// The ZeroMQ data-plane transport: tagged byte ranges between ranks over one ROUTER/DEALER TCP
// connection per (peer, lane) and direction, messages striped over the lanes in chunks of at most
// chunk_bytes (ZeroMQ is fast on 4 MiB messages and slow on huge ones). See zmq_engine.h for the
// threads and the failure model, zmq_wire.h for the wire format.
//
// Semantics beyond transport.h:
// - Sends of 64 KiB pieces and more are zero-copy: ZMQ reads the caller's buffer, and the request
//   completes once ZMQ let go of it. Smaller pieces are copied.
// - A message that arrives before its receive is posted waits inside the transport (as the ZMQ
//   messages it came in, no copy) until the receive is posted.
// - cancel() of a receive: it fails with kCanceled and the message it would have matched is
//   discarded when it comes, so the next receive with that tag matches the next message.
// - cancel() of a send: pieces not yet handed to ZMQ are recalled and the receiver is told (its
//   receive fails with kCanceled); pieces ZMQ already holds cannot be recalled, so the request
//   fails with kCanceled only once ZMQ released them (the buffer is then free to reuse).
// - Requests that fail at once (lost peer, aborted transport) run their callback on the calling
//   thread; all others run it on the progress thread. Callbacks must not block: the progress
//   thread also answers the peers' goodbyes and drains the sockets.
// - Destruction delivers what completed sends left queued (goodbye handshake, at most
//   min(peer_timeout, 2 s)); peers then see this rank as lost ("it left the group"). abort()
//   closes at once.
// - Memory: a message sent before its receive is posted is held whole by the receiver; each
//   (peer, tag) ever used keeps a small message counter on both ends (tags are not recycled).
// - irecv_any: see transport/core/inbound_matcher.h for which message an any-source receive gets.
#pragma once

#include "transport/core/link_transport.h"

namespace torchwan::transport {

// The core's LinkTransport (transport/core/link_transport.h) over ZeroMQ's link (zmq_engine.h).
class ZmqTransport final : public core::LinkTransport {
 public:
  // Returns once every peer answered on every lane; throws TransportError(kBootstrap) naming the
  // ranks that did not within options.connect_timeout.
  ZmqTransport(const TransportOptions& options, Store& store, int rank, int size);
};

}  // namespace torchwan::transport
