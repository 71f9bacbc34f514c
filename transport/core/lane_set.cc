#include "transport/core/lane_set.h"

namespace torchwan::transport::core {

std::string describe_message(bool is_send, int peer, Tag tag, size_t length) {
  const std::string who = peer == kAnySource ? "any rank" : "rank " + std::to_string(peer);
  return std::string(is_send ? "send to" : "receive from") + " " + who + " (tag " +
         std::to_string(tag) + ", " + std::to_string(length) + " bytes)";
}

PiecedMessage::PiecedMessage(uint64_t id, std::shared_ptr<Request> request, bool is_send, int peer,
                             Tag tag, size_t length, const TransportOptions& options)
    : PiecedMessage(id, std::move(request), is_send, peer, tag, length,
                    plan_pieces(options, tag, length)) {}

PiecedMessage::PiecedMessage(uint64_t id, std::shared_ptr<Request> request, bool is_send, int peer,
                             Tag tag, size_t length, std::vector<WirePiece> plan)
    : id_(id),
      request_(std::move(request)),
      is_send_(is_send),
      peer_(peer),
      tag_(tag),
      length_(length),
      plan_(std::move(plan)) {}

void PiecedMessage::release() {
  if (held_ > 0) --held_;
}

void PiecedMessage::piece_done() {
  if (pieces_done_ < plan_.size()) ++pieces_done_;
}

bool PiecedMessage::fail(std::exception_ptr error) {
  if (error_) return false;
  error_ = std::move(error);
  return true;
}

bool PiecedMessage::fail_now(std::exception_ptr error) {
  const bool first = fail(std::move(error));
  if (!request_ended_) {
    request_ended_ = true;
    request_->fail(error_);
  }
  return first;
}

bool PiecedMessage::settle() {
  if (held_ > 0) return false;
  if (!error_ && !all_pieces_done()) return false;
  if (!request_ended_) {
    request_ended_ = true;
    if (error_) {
      request_->fail(error_);
    } else {
      request_->complete_part();
    }
  }
  return true;
}

}  // namespace torchwan::transport::core
