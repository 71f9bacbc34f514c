// The lane set: what every link does with a message between "post it" and "its Request is done",
// written once here instead of once per link.
//
// A message is cut into pieces by plan_pieces (striping.h), each on its lane, so both ends agree
// without negotiating. The link posts each piece its own way (a UCX tagged operation, a ZeroMQ
// frame pair) and reports back what happened to it; the message here counts those reports and
// decides when the Request ends:
//
// - it completes once every piece is done and the link holds none of its buffers any more;
// - it fails exactly once, with the first error, and only after the link released every buffer of
//   the message, so a user never frees or reuses memory the link still reads or writes. Only a
//   link that forced its connection shut (nothing more can land in the buffers) fails it at once
//   (fail_now);
// - after the first error the link recalls what it can (fail() says when that is).
//
// A link keeps its own state per message by deriving from PiecedMessage, and all its messages in
// a LaneSet, which forgets a message as soon as it is finished. A link then only posts pieces,
// reports completions, holds and releases buffers, and fails messages.
#pragma once

#include <cstddef>
#include <cstdint>
#include <exception>
#include <memory>
#include <string>
#include <unordered_map>
#include <utility>
#include <vector>

#include "transport/options.h"
#include "transport/request.h"
#include "transport/striping.h"

namespace torchwan::transport::core {

// "send to rank 3 (tag 5, 100 bytes)", "receive from any rank (tag 5, 100 bytes)": how errors
// name a message.
std::string describe_message(bool is_send, int peer, Tag tag, size_t length);

// One outgoing or incoming message of a link, cut into pieces.
class PiecedMessage {
 public:
  // Cut with plan_pieces, as the peer cuts it.
  PiecedMessage(uint64_t id, std::shared_ptr<Request> request, bool is_send, int peer, Tag tag,
                size_t length, const TransportOptions& options);
  // Cut as `plan` says (a link's own messages: one piece on a chosen lane).
  PiecedMessage(uint64_t id, std::shared_ptr<Request> request, bool is_send, int peer, Tag tag,
                size_t length, std::vector<WirePiece> plan);
  virtual ~PiecedMessage() = default;
  PiecedMessage(const PiecedMessage&) = delete;
  PiecedMessage& operator=(const PiecedMessage&) = delete;

  // Never change: another thread (a link's release callback) may read id().
  uint64_t id() const { return id_; }
  bool is_send() const { return is_send_; }
  int peer() const { return peer_; }
  Tag tag() const { return tag_; }
  size_t length() const { return length_; }
  const std::vector<WirePiece>& plan() const { return plan_; }
  std::string describe() const { return describe_message(is_send_, peer_, tag_, length_); }

  // The link took a buffer of this message (posted a piece, made a zero-copy frame).
  void hold() { ++held_; }
  // The link let go of one: it neither reads nor writes it any more.
  void release();
  // The link's buffers are gone with the link itself (its context ended), so none is held.
  void release_all() { held_ = 0; }
  bool holds_buffers() const { return held_ > 0; }

  // A piece reached its end on the wire (sent, received whole).
  void piece_done();
  bool all_pieces_done() const { return pieces_done_ >= plan_.size(); }

  // Records `error` unless an earlier one is recorded. True when it is the first: the link then
  // recalls what of the message it still can.
  bool fail(std::exception_ptr error);
  // fail(), and the Request fails now although buffers may be held: only for a link that forced
  // its connection shut, so nothing more is read from or written into them.
  bool fail_now(std::exception_ptr error);
  bool failed() const { return error_ != nullptr; }
  const std::exception_ptr& error() const { return error_; }

  // Ends the Request if it can: nothing held and every piece done (it completes) or a failure (it
  // fails with the first error, unless fail_now did already). True when the message is finished,
  // so the link may forget it.
  bool settle();

 private:
  const uint64_t id_;
  std::shared_ptr<Request> request_;
  const bool is_send_;
  const int peer_;
  const Tag tag_;
  const size_t length_;
  const std::vector<WirePiece> plan_;
  size_t pieces_done_ = 0;
  size_t held_ = 0;
  std::exception_ptr error_;  // the first failure
  bool request_ended_ = false;
};

// A link's messages in flight, by id. `Message` derives from PiecedMessage.
template <typename Message>
class LaneSet {
 public:
  Message& add(std::unique_ptr<Message> message) {
    Message& added = *message;
    messages_.emplace(added.id(), std::move(message));
    return added;
  }
  Message* find(uint64_t id) {
    const auto found = messages_.find(id);
    return found == messages_.end() ? nullptr : found->second.get();
  }
  // Settles message `id` and forgets it once finished (destroying it). True when it did.
  bool settle(uint64_t id) {
    const auto found = messages_.find(id);
    if (found == messages_.end() || !found->second->settle()) return false;
    messages_.erase(found);
    return true;
  }
  // Settles every message; the ones that finish are forgotten.
  void settle_all() {
    for (auto it = messages_.begin(); it != messages_.end();) {
      it = it->second->settle() ? messages_.erase(it) : std::next(it);
    }
  }
  // Calls `visit(Message&)` on each message; it must not add or forget any.
  template <typename Visit>
  void for_each(Visit&& visit) {
    for (auto& [id, message] : messages_) visit(*message);
  }
  template <typename Predicate>
  bool any_of(Predicate&& predicate) const {
    for (const auto& [id, message] : messages_) {
      if (predicate(static_cast<const Message&>(*message))) return true;
    }
    return false;
  }
  bool empty() const { return messages_.empty(); }
  size_t size() const { return messages_.size(); }

 private:
  std::unordered_map<uint64_t, std::unique_ptr<Message>> messages_;
};

}  // namespace torchwan::transport::core
