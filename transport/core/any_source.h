// Any-source receives waiting for a sender, the same on every link. A link that matches tags
// itself (UCX) offers each its unexpected messages; a link that does not (ZeroMQ) lets the core's
// InboundMatcher offer it claimable messages. Either way receives with one tag are offered oldest
// first, and a receive that finds its sender learns it (Request::set_source) and goes on as an
// exact receive from that sender. Used on the progress thread only.
#pragma once

#include <cstdint>
#include <deque>
#include <exception>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <unordered_map>

#include "transport/request.h"

namespace torchwan::transport::core {

// A receive as the progress thread holds it.
struct PostedReceive {
  std::shared_ptr<Request> request;
  uint64_t id = 0;  // transport-wide request id, for cancel
  int peer = 0;     // kAnySource until an any-source receive is matched
  Tag tag = 0;
  uint8_t* data = nullptr;
  size_t length = 0;
};

class AnySourceReceives {
 public:
  // The sender a receive can take a message from now, if any.
  using FindSender = std::function<std::optional<int>(const PostedReceive&)>;
  // Starts a matched receive (its peer is set) as an exact one.
  using Start = std::function<void(PostedReceive)>;

  // `who` prefixes the errors ("ucx", "zmq transport rank 3").
  explicit AnySourceReceives(std::string who) : who_(std::move(who)) {}

  void add(PostedReceive receive);
  bool empty() const { return ids_.empty(); }
  size_t size() const { return ids_.size(); }

  // Offers the waiting receives with `tag` (every tag when nullopt), oldest first, to
  // `find_sender`; each that finds one is taken out and handed to `start`. A tag stops at its
  // first receive that finds none, so receives of one tag take messages in posting order.
  // Returns whether any receive was matched.
  bool match(std::optional<Tag> tag, const FindSender& find_sender, const Start& start);

  // Fails receive `id` with kCanceled when it waits here; false when it does not.
  bool cancel(uint64_t id);
  // Fails every waiting receive with `error`.
  void fail_all(const std::exception_ptr& error);

 private:
  const std::string who_;
  std::map<Tag, std::deque<PostedReceive>> by_tag_;
  std::unordered_map<uint64_t, Tag> ids_;
  int depth_ = 0;  // how many match calls are running (one inside another's `start`)
};

}  // namespace torchwan::transport::core
