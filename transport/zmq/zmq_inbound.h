// Receive-side matching. Senders number their messages per (receiver, tag); this side numbers its
// posted receives per (sender, tag) the same way, so the n-th message with a tag pairs with the
// n-th receive of that tag even when its pieces arrive over several lanes, interleaved with the
// next message's. A piece whose receive is not posted yet is kept as the zmq message it arrived in
// (no copy) and copied out when the receive is posted. Used only on the progress thread.
//
// Any-source receives wait, oldest first, per tag. A message is claimable by one once it is the
// next unclaimed message of its (sender, tag) stream, so messages from one sender still match in
// order. The rule: a message whose exact receive is already posted goes to it; otherwise the
// oldest pending any-source receive with its tag takes it when its first piece arrives; an
// any-source receive posted later takes the claimable message whose first piece arrived first.
// So an exact receive posted after a message arrived finds it gone if an any-source receive was
// waiting: the first receive posted that accepts a message gets it, as far as arrival allows. A
// message its sender canceled is left to the exact receive of its slot.
#pragma once

#include <cstdint>
#include <deque>
#include <exception>
#include <memory>
#include <optional>
#include <string>
#include <unordered_map>
#include <vector>
#include <zmq.hpp>

#include "transport/request.h"
#include "transport/zmq/zmq_wire.h"

namespace torchwan::transport::zmq_detail {

struct PostedRecv {
  std::shared_ptr<Request> request;
  uint64_t id = 0;  // transport-wide request id, for cancel
  int peer = 0;     // kAnySource for an any-source receive until it is matched
  Tag tag = 0;
  uint8_t* data = nullptr;
  size_t length = 0;
};

class InboundMatcher {
 public:
  explicit InboundMatcher(int rank) : rank_(rank) {}

  void post(PostedRecv recv);
  // `recv.peer` is kAnySource; see the rule above.
  void post_any(PostedRecv recv);
  // Takes one data piece from `peer` whose header has passed decode_header. Returns an empty
  // string, or why the piece breaks the protocol (the caller then treats the peer as lost).
  std::string deliver(int peer, const Header& header, ::zmq::message_t payload);
  // The sender gave up on message (tag, index): its receive fails with kCanceled.
  void sender_canceled(int peer, const Header& header);
  // Fails the posted receive `recv_id` with kCanceled; its message is discarded when it comes,
  // so the next receive with that tag still pairs with the next message.
  void cancel(uint64_t recv_id);
  // Fails every receive from `peer` and forgets what it sent. Returns how many receives failed.
  // Pending any-source receives stay: other ranks may still send.
  size_t fail_peer(int peer, const std::exception_ptr& error);
  void fail_all(const std::exception_ptr& error);
  // `peer` left in order, after everything it sent arrived (its goodbye came behind its data on
  // every lane). Its posted receives fail with `error`, and so will later ones that nothing it
  // sent matches; whole messages that arrived stay for the receives still to come. Returns how
  // many receives failed.
  size_t depart(int peer, const std::exception_ptr& error);

  size_t posted_count() const { return posted_by_id_.size() + any_ids_.size(); }

 private:
  struct Key {
    int peer;
    Tag tag;
    uint64_t index;
    bool operator==(const Key&) const = default;
  };
  struct KeyHash {
    size_t operator()(const Key& key) const;
  };
  struct StashedPiece {
    uint64_t offset;
    ::zmq::message_t payload;
  };
  // One message, from its first piece or its receive (whichever comes first) until both are done.
  struct Slot {
    std::optional<PostedRecv> recv;
    bool discarding = false;  // its receive failed or was canceled: drop what still comes
    bool sender_canceled = false;
    std::optional<uint64_t> total_length;  // as the sender announced it
    uint64_t bytes_arrived = 0;
    uint64_t arrival = 0;  // when its first piece came, for any-source matching
    std::vector<StashedPiece> stash;
  };

  static uint64_t stream(int peer, Tag tag) { return static_cast<uint64_t>(peer) << 48 | tag; }
  // Gives message `key` its receive: copies what is stashed, completes or fails it as due.
  void attach(const Key& key, PostedRecv recv);
  // Hands claimable messages with `tag` to the pending any-source receives, oldest first.
  void match_any(Tag tag);

  void complete(Slot& slot);
  void fail_recv(Slot& slot, std::exception_ptr error);
  void fail_size_mismatch(Slot& slot);
  // Erases the slot once nothing more is expected for it.
  void retire_if_done(const Key& key, const Slot& slot);

  const int rank_;
  std::unordered_map<Key, Slot, KeyHash> slots_;
  std::unordered_map<uint64_t, Key> posted_by_id_;
  // Next receive index per (peer << 48 | tag); tags are below 2^48 and peers below 2^16.
  std::unordered_map<uint64_t, uint64_t> next_index_;
  std::unordered_map<Tag, std::deque<PostedRecv>> any_by_tag_;  // pending any-source receives
  std::unordered_map<uint64_t, Tag> any_ids_;                   // their ids, for cancel
  uint64_t next_arrival_ = 0;
  std::unordered_map<int, std::exception_ptr> departed_;  // per peer that left in order
};

}  // namespace torchwan::transport::zmq_detail
