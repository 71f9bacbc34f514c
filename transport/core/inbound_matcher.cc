#include "transport/core/inbound_matcher.h"

#include <cstring>
#include <functional>
#include <utility>

#include "transport/core/received_copy.h"
#include "transport/errors.h"

namespace torchwan::transport::core {

namespace {

std::string describe(int peer, Tag tag, uint64_t index) {
  return "rank " + std::to_string(peer) + ", tag " + std::to_string(tag) + ", message #" +
         std::to_string(index);
}

}  // namespace

size_t InboundMatcher::KeyHash::operator()(const Key& key) const {
  const uint64_t mixed = (static_cast<uint64_t>(key.peer) << 48 | key.tag) * 0x9E3779B97F4A7C15ull;
  return std::hash<uint64_t>{}(mixed ^ key.index);
}

void InboundMatcher::post(PostedReceive recv) {
  const Tag tag = recv.tag;
  const uint64_t id = recv.id;
  const Key key{recv.peer, tag, next_index_[stream(recv.peer, tag)]++};
  attach(key, std::move(recv));
  const auto departed = departed_.find(key.peer);
  if (departed != departed_.end() && posted_by_id_.count(id) != 0) {
    // Its sender is gone and its message did not arrive whole before: it never will.
    fail_recv(slots_.at(key), departed->second);
    slots_.erase(key);
  }
  // The sender's next message may now be claimable by a waiting any-source receive.
  match_any(tag);
}

void InboundMatcher::post_any(PostedReceive recv) {
  const Tag tag = recv.tag;
  any_.add(std::move(recv));
  match_any(tag);
}

std::optional<InboundMatcher::Key> InboundMatcher::oldest_claimable(Tag tag) const {
  std::optional<Key> best;
  uint64_t best_arrival = 0;
  for (const auto& [key, slot] : slots_) {
    if (key.tag != tag || slot.recv || slot.discarding || !slot.total_length) continue;
    const auto next = next_index_.find(stream(key.peer, tag));
    if (key.index != (next == next_index_.end() ? 0 : next->second)) continue;
    if (!best || slot.arrival < best_arrival) {
      best = key;
      best_arrival = slot.arrival;
    }
  }
  return best;
}

std::optional<int> InboundMatcher::claimable_sender(Tag tag) const {
  const std::optional<Key> key = oldest_claimable(tag);
  if (!key) return std::nullopt;
  return key->peer;
}

void InboundMatcher::match_any(Tag tag) {
  any_.match(
      tag, [&](const PostedReceive&) { return claimable_sender(tag); },
      [&](PostedReceive recv) {
        const Key key{recv.peer, tag, next_index_[stream(recv.peer, tag)]++};
        attach(key, std::move(recv));
      });
}

void InboundMatcher::attach(const Key& key, PostedReceive recv) {
  Slot& slot = slots_[key];
  posted_by_id_[recv.id] = key;
  slot.recv = std::move(recv);
  if (slot.sender_canceled) {
    fail_recv(slot, std::make_exception_ptr(TransportError(
                        ErrorKind::kCanceled,
                        who_ + ": the sender (" + describe(key.peer, key.tag, key.index) +
                            ") canceled this message",
                        key.peer)));
    return;
  }
  if (!slot.total_length) return;  // nothing arrived yet
  if (*slot.total_length != slot.recv->length) {
    fail_size_mismatch(slot);
    retire_if_done(key, slot);
    return;
  }
  for (const StashedPiece& piece : slot.stash) {
    if (piece.payload.size() > 0) {
      copy_received_piece(slot.recv->data + piece.offset,
                          static_cast<const uint8_t*>(piece.payload.data()), piece.payload.size());
    }
  }
  slot.stash.clear();
  if (slot.bytes_arrived == *slot.total_length) {
    complete(slot);
    slots_.erase(key);
  }
}

std::string InboundMatcher::deliver(int peer, const PieceHeader& header, HeldBytes payload) {
  if (header.offset > header.total_length || header.length > header.total_length - header.offset) {
    return "a piece of " + std::to_string(header.length) + " bytes at offset " +
           std::to_string(header.offset) + " lies outside the " +
           std::to_string(header.total_length) + "-byte " +
           describe(peer, header.tag, header.index);
  }
  if (payload.size() != header.length) {
    return "a piece announced as " + std::to_string(header.length) + " bytes came with " +
           std::to_string(payload.size());
  }
  const Key key{peer, header.tag, header.index};
  Slot& slot = slots_[key];
  if (slot.total_length && *slot.total_length != header.total_length) {
    return "pieces of one message (" + describe(peer, header.tag, header.index) +
           ") disagree on its length: " + std::to_string(*slot.total_length) + " then " +
           std::to_string(header.total_length);
  }
  const bool first_piece = !slot.total_length;
  if (first_piece) slot.arrival = next_arrival_++;
  slot.total_length = header.total_length;
  if (header.length > header.total_length - slot.bytes_arrived) {
    return "more bytes than the " + std::to_string(header.total_length) + "-byte length of " +
           describe(peer, header.tag, header.index);
  }
  if (slot.recv && slot.recv->length != header.total_length) fail_size_mismatch(slot);
  if (slot.recv) {
    // offset + length <= total length (checked above), which equals the posted length.
    if (header.length > 0) {
      copy_received_piece(slot.recv->data + header.offset,
                          static_cast<const uint8_t*>(payload.data()), header.length);
    }
  } else if (!slot.discarding) {
    slot.stash.push_back({header.offset, std::move(payload)});
  }
  slot.bytes_arrived += header.length;
  const bool unclaimed = !slot.recv && !slot.discarding;
  if (slot.bytes_arrived == header.total_length) {
    if (slot.recv) {
      complete(slot);
      slots_.erase(key);
    } else {
      retire_if_done(key, slot);
    }
  }
  if (first_piece && unclaimed) match_any(header.tag);
  return {};
}

void InboundMatcher::sender_canceled(int peer, Tag tag, uint64_t index) {
  const Key key{peer, tag, index};
  Slot& slot = slots_[key];
  slot.sender_canceled = true;
  slot.discarding = true;
  slot.stash.clear();
  if (slot.recv) {
    fail_recv(slot,
              std::make_exception_ptr(TransportError(
                  ErrorKind::kCanceled,
                  who_ + ": the sender (" + describe(peer, tag, index) + ") canceled this message",
                  peer)));
  }
  // The slot stays: pieces that left before the cancel may still arrive and must be dropped.
}

void InboundMatcher::cancel(uint64_t recv_id) {
  if (any_.cancel(recv_id)) return;
  const auto found = posted_by_id_.find(recv_id);
  if (found == posted_by_id_.end()) return;  // already done
  const Key key = found->second;
  Slot& slot = slots_.at(key);
  fail_recv(slot, std::make_exception_ptr(TransportError(
                      ErrorKind::kCanceled,
                      who_ + ": receive from rank " + std::to_string(key.peer) + " with tag " +
                          std::to_string(key.tag) + " canceled by its owner",
                      key.peer)));
  retire_if_done(key, slot);
}

size_t InboundMatcher::fail_peer(int peer, const std::exception_ptr& error) {
  std::vector<std::shared_ptr<Request>> failed;
  for (auto it = slots_.begin(); it != slots_.end();) {
    if (it->first.peer != peer) {
      ++it;
      continue;
    }
    if (it->second.recv) {
      posted_by_id_.erase(it->second.recv->id);
      failed.push_back(std::move(it->second.recv->request));
    }
    it = slots_.erase(it);
  }
  // Callbacks run after the tables are consistent again.
  for (auto& request : failed) request->fail(error);
  return failed.size();
}

size_t InboundMatcher::depart(int peer, const std::exception_ptr& error) {
  departed_[peer] = error;
  std::vector<std::shared_ptr<Request>> failed;
  for (auto it = slots_.begin(); it != slots_.end();) {
    Slot& slot = it->second;
    const bool whole = slot.total_length && slot.bytes_arrived == *slot.total_length;
    if (it->first.peer != peer || (whole && !slot.recv)) {
      ++it;
      continue;
    }
    if (slot.recv) {
      posted_by_id_.erase(slot.recv->id);
      failed.push_back(std::move(slot.recv->request));
    }
    it = slots_.erase(it);
  }
  for (auto& request : failed) request->fail(error);
  return failed.size();
}

void InboundMatcher::fail_all(const std::exception_ptr& error) {
  std::vector<std::shared_ptr<Request>> failed;
  for (auto& [key, slot] : slots_) {
    if (slot.recv) failed.push_back(std::move(slot.recv->request));
  }
  slots_.clear();
  posted_by_id_.clear();
  for (auto& request : failed) request->fail(error);
  any_.fail_all(error);
}

void InboundMatcher::complete(Slot& slot) {
  std::shared_ptr<Request> request = std::move(slot.recv->request);
  posted_by_id_.erase(slot.recv->id);
  slot.recv.reset();
  request->complete_part();
}

void InboundMatcher::fail_recv(Slot& slot, std::exception_ptr error) {
  std::shared_ptr<Request> request = std::move(slot.recv->request);
  posted_by_id_.erase(slot.recv->id);
  slot.recv.reset();
  slot.discarding = true;
  slot.stash.clear();
  request->fail(std::move(error));
}

void InboundMatcher::fail_size_mismatch(Slot& slot) {
  const PostedReceive& recv = *slot.recv;
  fail_recv(slot,
            std::make_exception_ptr(TransportError(
                ErrorKind::kSizeMismatch,
                who_ + ": receive from rank " + std::to_string(recv.peer) + " with tag " +
                    std::to_string(recv.tag) + " expected " + std::to_string(recv.length) +
                    " bytes, but the sender sent " + std::to_string(*slot.total_length) + " bytes",
                recv.peer)));
}

void InboundMatcher::retire_if_done(const Key& key, const Slot& slot) {
  const bool all_arrived = slot.total_length && slot.bytes_arrived == *slot.total_length;
  if (!slot.recv && slot.discarding && all_arrived && !slot.sender_canceled) slots_.erase(key);
}

}  // namespace torchwan::transport::core
