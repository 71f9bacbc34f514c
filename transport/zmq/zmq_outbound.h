// Send-side bookkeeping. A send is a message of the core's lane set (transport/core/lane_set.h),
// cut into pieces by plan_pieces, each queued on its lane's DEALER as a [header, payload] frame
// pair; a piece is done once ZMQ accepted it. Large payloads go to ZMQ zero-copy: the zmq message
// points into the caller's buffer, which the send holds until ZMQ calls release_zero_copy_piece
// (on one of its I/O threads) because it no longer reads it. So a send completes, or reports its
// failure, only after every such buffer was released, and the caller may reuse its buffer as soon
// as the request is done.
#pragma once

#include <cstddef>
#include <cstdint>
#include <exception>
#include <memory>
#include <optional>
#include <zmq.hpp>

#include "transport/core/lane_set.h"
#include "transport/core/mailbox.h"
#include "transport/request.h"
#include "transport/zmq/zmq_wire.h"

namespace torchwan::transport::zmq_detail {

// Payloads below this are copied into the zmq message: cheaper than a release notice, and the
// piece counts as done as soon as ZMQ accepts it.
inline constexpr size_t kCopyBelowBytes = 64 * 1024;

struct SendOp : core::PiecedMessage {
  SendOp(uint64_t id, core::Mailbox<uint64_t>& releases, std::shared_ptr<Request> request, int peer,
         Tag tag, const uint8_t* data, size_t length, uint64_t index,
         const TransportOptions& options)
      : core::PiecedMessage(id, std::move(request), /*is_send=*/true, peer, tag, length, options),
        releases(releases),
        index(index),
        data(data) {}

  // Read by release_zero_copy_piece on a ZMQ I/O thread, with id(); never change after
  // construction. The rest belongs to the progress thread.
  core::Mailbox<uint64_t>& releases;
  const uint64_t index;  // among this peer's sends with this tag: the receiver matches by it
  const uint8_t* const data;
};

// The zmq_free_fn of zero-copy payloads; `hint` is the SendOp, which outlives the zmq message.
void release_zero_copy_piece(void* data, void* hint);

// One [header, payload] pair waiting for room on its DEALER.
struct OutgoingFrame {
  SendOp* op = nullptr;  // null for the transport's own messages (hello, cancel notice)
  Header header;
  // Built on the first attempt to send, then kept across EAGAIN retries: a zero-copy message must
  // be released exactly once.
  std::optional<::zmq::message_t> payload;

  // The payload zmq message: a copy when small, else zero-copy into op's buffer.
  ::zmq::message_t& prepare_payload();
};

}  // namespace torchwan::transport::zmq_detail
