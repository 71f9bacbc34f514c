#include "transport/zmq/zmq_outbound.h"

namespace torchwan::transport::zmq_detail {

void release_zero_copy_piece(void* /*data*/, void* hint) {
  auto* op = static_cast<SendOp*>(hint);
  op->releases.push(op->id());
}

::zmq::message_t& OutgoingFrame::prepare_payload() {
  if (payload) return *payload;
  if (op == nullptr || header.length == 0) {
    payload.emplace();
  } else if (header.length < kCopyBelowBytes) {
    payload.emplace(op->data + header.offset, header.length);
  } else {
    // ZMQ only reads through this pointer; its API is not const-correct.
    auto* bytes = const_cast<uint8_t*>(op->data + header.offset);
    payload.emplace(bytes, header.length, &release_zero_copy_piece, op);
    op->hold();
  }
  return *payload;
}

}  // namespace torchwan::transport::zmq_detail
