// Send-side bookkeeping. A message is cut into pieces (plan_pieces), each queued on its lane's
// DEALER as a [header, payload] frame pair. Large payloads go to ZMQ zero-copy: the zmq message
// points into the caller's buffer and ZMQ calls release_zero_copy_piece (on one of its I/O threads)
// once it no longer reads it. A send completes, or reports its failure, only after every such
// buffer was released, so the caller may reuse its buffer as soon as the request is done.
#pragma once

#include <cstddef>
#include <cstdint>
#include <exception>
#include <memory>
#include <optional>
#include <zmq.hpp>

#include "transport/core/mailbox.h"
#include "transport/request.h"
#include "transport/zmq/zmq_wire.h"

namespace torchwan::transport::zmq_detail {

// Payloads below this are copied into the zmq message: cheaper than a release notice, and the
// piece counts as done as soon as ZMQ accepts it.
inline constexpr size_t kCopyBelowBytes = 64 * 1024;

struct SendOp {
  SendOp(uint64_t id, core::Mailbox<uint64_t>& releases) : id(id), releases(releases) {}

  // Read by release_zero_copy_piece on a ZMQ I/O thread; never change after construction.
  const uint64_t id;
  core::Mailbox<uint64_t>& releases;

  // The rest belongs to the progress thread.
  std::shared_ptr<Request> request;
  int peer = 0;
  Tag tag = 0;
  uint64_t index = 0;
  const uint8_t* data = nullptr;
  size_t length = 0;
  size_t pieces_total = 0;
  size_t pieces_sent = 0;  // accepted by ZMQ
  size_t zero_copy_created = 0;
  size_t zero_copy_released = 0;
  std::exception_ptr failure;  // reported once ZMQ has released every buffer it was given

  bool zmq_holds_buffer() const { return zero_copy_released < zero_copy_created; }
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
