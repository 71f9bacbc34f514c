// The narrow interface between the transport core and a link (UCX, ZeroMQ, or a third one): what
// the core's progress loop (link_transport.h) asks of a link, each call on the loop's thread, which
// alone touches the link's sockets or workers. The core keeps everything else a transport does
// for its users: argument checks, refusing requests to lost peers, request ids and cancel hooks,
// the command mailbox, the thread and its lifecycle, and the abort handshake.
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "transport/core/any_source.h"
#include "transport/core/mailbox.h"
#include "transport/core/peer_table.h"
#include "transport/link_rung.h"
#include "transport/options.h"
#include "transport/request.h"
#include "transport/store.h"

namespace torchwan::transport::core {

// A user's send as the loop hands it to the link: the Request to finish, the id its cancel hook
// names, and the caller's buffer, which stays valid until the Request ends.
struct PostedSend {
  std::shared_ptr<Request> request;
  uint64_t id = 0;
  int peer = -1;
  Tag tag = 0;
  const uint8_t* data = nullptr;
  size_t length = 0;
};

class Link {
 public:
  virtual ~Link() = default;

  // Per rank how this link reaches it (this rank's own entry is unused); fixed once made.
  virtual std::vector<LinkRung> rungs() const = 0;

  // Starts a send to a peer the peer table did not refuse when it was posted.
  virtual void start_send(PostedSend send) = 0;
  // Starts a receive; `receive.peer` may be kAnySource.
  virtual void start_receive(PostedReceive receive) = 0;
  // The sender whose message an any-source receive like `receive` could take now, if any: the
  // next unclaimed message with its tag of that sender (one whose exact receive is not posted), so
  // that messages from one sender still match in order. A caller that holds any-source receives
  // itself (a link over several links) then starts the receive as an exact one from that sender,
  // which takes that message. Only the receive's tag and length count.
  virtual std::optional<int> claimable_sender(const PostedReceive& receive) = 0;
  // Cancels what can still be canceled of request `id`, which then fails with kCanceled; an id
  // that already finished is ignored.
  virtual void cancel(uint64_t id) = 0;
  // Fails everything pending with `failure` (the peer table already holds it) and closes every
  // connection; `reason` is the caller's own words, for the peers.
  virtual void abort(const Failure& failure, const std::string& reason) = 0;

  // One round of progress without sleeping: takes what arrived, sends what may leave, runs the
  // link's timers. True when anything happened, so the caller goes round again before sleeping.
  virtual bool progress_once() = 0;
  // Readies the link to sleep. False when events are already pending (the caller progresses
  // instead of sleeping): a sleep now could miss them.
  virtual bool prepare_to_sleep() = 0;
  // A descriptor, the same for the link's life, that once prepare_to_sleep() returned true stays
  // readable (level-triggered) while the link has events, so that another link can sleep on it
  // too; nullopt when the link has none and can only sleep itself.
  virtual std::optional<int> event_descriptor() const = 0;
  // After prepare_to_sleep() returned true: sleeps until the link has an event, a descriptor of
  // `extra_fds` or the loop's wakeup descriptor (LinkSetup::wakeup) is readable, or `timeout`
  // passed (kNoTimeout: none of the caller's); a link with timers of its own bounds the sleep by
  // them. A link with mailboxes of its own on the wakeup takes them before it sleeps, so that no
  // item waits for another event. It may handle the events it woke for.
  virtual void sleep(const std::vector<int>& extra_fds, std::chrono::milliseconds timeout) = 0;
  static constexpr std::chrono::milliseconds kNoTimeout{-1};
  // The shorter of two sleep bounds, kNoTimeout (any negative) meaning none.
  static constexpr std::chrono::milliseconds shorter_timeout(std::chrono::milliseconds a,
                                                             std::chrono::milliseconds b) {
    if (a.count() < 0) return b;
    if (b.count() < 0) return a;
    return a < b ? a : b;
  }
  // How long the link may sleep before its own timers (heartbeats, liveness) are due, or
  // kNoTimeout: a link sleeping beside it (SplitLink) sleeps no longer.
  virtual std::chrono::milliseconds sleep_limit() const = 0;

  // One round of progress, or, when nothing was ready, one sleep: what the loop calls. Built on
  // the three calls above, so that a link driven alone and one driven beside another (which
  // sleeps on both) make progress the same way.
  void advance() {
    if (progress_once()) return;
    if (prepare_to_sleep()) sleep({}, kNoTimeout);
  }

  // The loop was told to stop and has started every command queued before: delivers what was
  // sent (bounded by the link's own patience), fails the rest with kAborted, and closes.
  virtual void leave() = 0;
};

// What the loop gives the factory that makes a link, on the loop's thread.
struct LinkSetup {
  const TransportOptions& options;
  Store& store;
  int rank;
  int size;
  PeerTable& peers;
  // Signalled when commands wait; a link puts its descriptor in its sleep, and may hang
  // mailboxes of its own on it (for events from threads of its library).
  Wakeup& wakeup;
  // Connection setup ends by then.
  std::chrono::steady_clock::time_point deadline;
};

}  // namespace torchwan::transport::core
