// What leaves: frames from the lane queues into the DEALERs, and send completion.
#include "relay/relay_client.h"
#include "transport/zmq/zmq_engine.h"
#include "transport/zmq/zmq_wire.h"

namespace torchwan::transport::zmq_detail {

void Engine::flush(SendLane& link) {
  if (link.relayed) {
    flush_relayed(link);
    return;
  }
  // A reverse lane sends over this rank's ROUTER to the DEALER the peer dialed, whose routing id
  // is known only once its hello arrived on this lane.
  if (link.routed && !hello_seen_[static_cast<size_t>(link.peer * options_.lanes + link.lane)]) {
    return;
  }
  ::zmq::socket_t* router =
      link.routed ? &receive_lanes_[static_cast<size_t>(link.lane)].router.socket() : nullptr;
  const std::string routing = link.routed ? routing_id(link.peer, link.lane) : std::string();
  const auto more = ::zmq::send_flags::sndmore | ::zmq::send_flags::dontwait;
  while ((link.routed || link.dealer) && !link.queue.empty()) {
    OutgoingFrame& frame = link.queue.front();
    Header stamped = frame.header;
    stamped.job = auth_.job_hash();
    stamped.epoch = auth_.epoch();
    const auto header = encode_header(stamped);
    ::zmq::message_t& payload = frame.prepare_payload();
    try {
      // Room for the first frame of a message is room for all of it; if ZMQ still refuses, it
      // rolled the message back and it is retried whole. The ROUTER's pipes are unbounded
      // (configure_router): ZMQ takes every frame at once.
      const bool sent = router != nullptr
                            ? router->send(::zmq::buffer(routing), more) &&
                                  router->send(::zmq::buffer(header), more) &&
                                  router->send(payload, ::zmq::send_flags::dontwait)
                            : link.dealer.socket().send(::zmq::buffer(header), more) &&
                                  link.dealer.socket().send(payload, ::zmq::send_flags::dontwait);
      if (!sent) return;  // full: wait for POLLOUT
    } catch (const ::zmq::error_t& error) {
      // Only a connection being torn down mid-message gets here (EHOSTUNREACH on a reverse lane:
      // the connection the peer dialed is gone).
      lose_peer(link.peer, ErrorKind::kPeerLost,
                "sending on lane " + std::to_string(link.lane) +
                    (router != nullptr ? " over its connection to this rank" : "") +
                    " failed: " + error.what());
      return;
    }
    SendOp* op = frame.op;
    link.queue.pop_front();
    if (op != nullptr) {
      op->piece_done();
      send_ops_.settle(op->id());
    }
  }
}

void Engine::flush_relayed(SendLane& link) {
  while (relay_ && link.relayed) {
    if (link.relay_out.empty()) {
      if (link.queue.empty()) return;
      // The frame becomes a record here, taking its payload message without a copy: its piece is
      // done and leaves the queue, so a cancel never recalls a record half sent (the receiver
      // would lose its place in the stream). A zero-copy payload holds the send's buffer until
      // the record has left, as ZeroMQ would hold it on a connection.
      OutgoingFrame& frame = link.queue.front();
      Header stamped = frame.header;
      stamped.job = auth_.job_hash();
      stamped.epoch = auth_.epoch();
      link.relay_out =
          make_relayed_record(encode_header(stamped), std::move(frame.prepare_payload()));
      SendOp* op = frame.op;
      link.queue.pop_front();
      if (op != nullptr) {
        op->piece_done();
        send_ops_.settle(op->id());
      }
    }
    bool sent = false;
    try {
      sent = relay_->send(link.peer, link.lane, link.relay_out);
    } catch (const relay::RelayError& error) {
      lose_peer(link.peer, ErrorKind::kPeerLost,
                "sending on lane " + std::to_string(link.lane) + " through " + link.endpoint +
                    " failed: " + error.what());
      return;
    }
    relay_liveness_.sent(link.peer, std::chrono::steady_clock::now());
    if (!sent) return;  // the window is full: the peer's credit wakes the poll
    link.relay_out = {};
  }
}

void Engine::flush_all() {
  for (SendLane& link : send_lanes_) {
    if (!link.queue.empty() || !link.relay_out.empty()) flush(link);
  }
}

void Engine::cancel_send(SendOp& op) {
  const bool first = op.fail(std::make_exception_ptr(
      TransportError(ErrorKind::kCanceled,
                     who() + ": send to rank " + std::to_string(op.peer()) + " with tag " +
                         std::to_string(op.tag()) + " canceled by its owner",
                     op.peer())));
  if (!first) return;
  if (!op.all_pieces_done()) {
    // Pieces not yet given to ZMQ are recalled; those it holds are not, so the request fails
    // only once ZMQ releases them.
    for (int lane = 0; lane < options_.lanes; ++lane) {
      auto& queue = send_lane(op.peer(), lane).queue;
      std::erase_if(queue, [&](const OutgoingFrame& frame) { return frame.op == &op; });
    }
    // Tell the receiver, whose receive would otherwise wait for pieces that never come.
    OutgoingFrame notice;
    notice.header.type = MessageType::kCancel;
    notice.header.tag = op.tag();
    notice.header.index = op.index;
    notice.header.total_length = op.length();
    send_lane(op.peer(), 0).queue.push_back(std::move(notice));
  }
  send_ops_.settle(op.id());  // may destroy op
}

}  // namespace torchwan::transport::zmq_detail
