// Receive-side matching for links that do not match tags themselves (ZeroMQ; a raw TCP link would
// be another). Senders number their messages per (receiver, tag); this side numbers its posted
// receives per (sender, tag) the same way, so the n-th message with a tag pairs with the n-th
// receive of that tag even when its pieces arrive over several lanes, interleaved with the next
// message's. A piece whose receive is not posted yet is kept as the link delivered it (HeldBytes,
// no copy) and copied out when the receive is posted. Used only on the progress thread.
//
// Any-source receives wait in AnySourceReceives, oldest first per tag. A message is claimable by
// one once it is the next unclaimed message of its (sender, tag) stream, so messages from one
// sender still match in order. The rule: a message whose exact receive is already posted goes to
// it; otherwise the oldest pending any-source receive with its tag takes it when its first piece
// arrives; an any-source receive posted later takes the claimable message whose first piece
// arrived first. So an exact receive posted after a message arrived finds it gone if an
// any-source receive was waiting: the first receive posted that accepts a message gets it, as far
// as arrival allows. A message its sender canceled is left to the exact receive of its slot.
#pragma once

#include <cstdint>
#include <exception>
#include <memory>
#include <optional>
#include <string>
#include <unordered_map>
#include <vector>

#include "transport/core/any_source.h"
#include "transport/request.h"

namespace torchwan::transport::core {

// Where a piece belongs: the message (tag, index) of its sender, and its place in it.
struct PieceHeader {
  Tag tag = 0;
  uint64_t index = 0;         // per (sender, receiver, tag): the n-th message with this tag
  uint64_t total_length = 0;  // of the whole message
  uint64_t offset = 0;        // of this piece within the message
  uint64_t length = 0;        // of this piece
};

// Received bytes and whatever owns their memory (the link's message object), so that a piece can
// wait for its receive without a copy.
class HeldBytes {
 public:
  HeldBytes() = default;
  // Takes `owner`, whose data() and size() are the bytes.
  template <class Owner>
  static HeldBytes hold(Owner&& owner) {
    auto kept = std::make_shared<std::decay_t<Owner>>(std::forward<Owner>(owner));
    HeldBytes bytes;
    bytes.data_ = static_cast<const uint8_t*>(kept->data());
    bytes.size_ = kept->size();
    bytes.owner_ = std::move(kept);
    return bytes;
  }
  const uint8_t* data() const { return data_; }
  size_t size() const { return size_; }

 private:
  const uint8_t* data_ = nullptr;
  size_t size_ = 0;
  std::shared_ptr<void> owner_;
};

class InboundMatcher {
 public:
  // `who` prefixes the errors ("zmq transport rank 3").
  explicit InboundMatcher(std::string who) : who_(who), any_(std::move(who)) {}

  void post(PostedReceive recv);
  // `recv.peer` is kAnySource; see the rule above.
  void post_any(PostedReceive recv);
  // Takes one data piece from `peer`. Returns an empty string, or why the piece breaks the
  // protocol (the caller then treats the peer as lost).
  std::string deliver(int peer, const PieceHeader& piece, HeldBytes payload);
  // The sender gave up on message (tag, index): its receive fails with kCanceled.
  void sender_canceled(int peer, Tag tag, uint64_t index);
  // The sender of the claimable message with `tag` (see the rule above) whose first piece arrived
  // first, if any: for a caller that holds any-source receives itself and posts the matched one
  // as an exact receive from that sender.
  std::optional<int> claimable_sender(Tag tag) const;
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

  size_t posted_count() const { return posted_by_id_.size() + any_.size(); }

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
    HeldBytes payload;
  };
  // One message, from its first piece or its receive (whichever comes first) until both are done.
  struct Slot {
    std::optional<PostedReceive> recv;
    bool discarding = false;  // its receive failed or was canceled: drop what still comes
    bool sender_canceled = false;
    std::optional<uint64_t> total_length;  // as the sender announced it
    uint64_t bytes_arrived = 0;
    uint64_t arrival = 0;  // when its first piece came, for any-source matching
    std::vector<StashedPiece> stash;
  };

  static uint64_t stream(int peer, Tag tag) { return static_cast<uint64_t>(peer) << 48 | tag; }
  // Gives message `key` its receive: copies what is stashed, completes or fails it as due.
  void attach(const Key& key, PostedReceive recv);
  // Hands claimable messages with `tag` to the pending any-source receives, oldest first.
  void match_any(Tag tag);
  // The claimable message with `tag` whose first piece arrived first, if any.
  std::optional<Key> oldest_claimable(Tag tag) const;

  void complete(Slot& slot);
  void fail_recv(Slot& slot, std::exception_ptr error);
  void fail_size_mismatch(Slot& slot);
  // Erases the slot once nothing more is expected for it.
  void retire_if_done(const Key& key, const Slot& slot);

  const std::string who_;
  std::unordered_map<Key, Slot, KeyHash> slots_;
  std::unordered_map<uint64_t, Key> posted_by_id_;
  // Next receive index per (peer << 48 | tag); tags are below 2^48 and peers below 2^16.
  std::unordered_map<uint64_t, uint64_t> next_index_;
  AnySourceReceives any_;
  uint64_t next_arrival_ = 0;
  std::unordered_map<int, std::exception_ptr> departed_;  // per peer that left in order
};

}  // namespace torchwan::transport::core
