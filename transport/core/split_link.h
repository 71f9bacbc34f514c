// A link over two links that each serve some of the peers: the primary (UCX, which reaches most
// pairs) and the secondary (a ZeroMQ link through a relay, for the pairs that nothing else
// connects). Every request goes to the link serving its peer; any-source receives wait here,
// since either link may hold the message, and each starts as an exact receive on the link of the
// sender whose message it can take (Link::claimable_sender), so messages from one sender still
// match in order. One round of progress runs both; one sleep waits on both: the primary is
// armed, and the secondary sleeps with the primary's event descriptor among its own. Used on the
// progress thread only, like any link.
#pragma once

#include <chrono>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "transport/core/any_source.h"
#include "transport/core/link.h"

namespace torchwan::transport::core {

class SplitLink final : public Link {
 public:
  // `secondary_serves[peer]`: the secondary serves `peer`, the primary every other peer. Both
  // sides of a pair must agree. The primary must offer an event descriptor for the secondary to
  // sleep on: throws TransportError(kInternal) when it has none. `who` prefixes the errors
  // ("ucx rank 3").
  SplitLink(std::unique_ptr<Link> primary, std::unique_ptr<Link> secondary,
            std::vector<bool> secondary_serves, std::string who);

  // Per peer the rung of the link serving it.
  std::vector<LinkRung> rungs() const override;
  void start_send(PostedSend send) override;
  void start_receive(PostedReceive receive) override;
  std::optional<int> claimable_sender(const PostedReceive& receive) override;
  // Request ids are the transport's, unique across both links: each ignores ids it does not hold.
  void cancel(uint64_t id) override;
  void abort(const Failure& failure, const std::string& reason) override;
  bool progress_once() override;
  bool prepare_to_sleep() override;
  // Two links' events have no one descriptor: this link can only sleep itself.
  std::optional<int> event_descriptor() const override { return std::nullopt; }
  // The shorter of the two links' limits.
  std::chrono::milliseconds sleep_limit() const override;
  void sleep(const std::vector<int>& extra_fds, std::chrono::milliseconds timeout) override;
  // The secondary first: it waits (bounded) for its relayed peers' acknowledgements, the primary
  // then for its own; each delivers what was sent through it.
  void leave() override;

 private:
  Link& serving(int peer) const;
  // Starts the waiting any-source receives whose message either link holds; true when any.
  bool match_any_source();

  std::unique_ptr<Link> primary_;
  std::unique_ptr<Link> secondary_;
  const std::vector<bool> secondary_serves_;
  const std::string who_;
  AnySourceReceives any_source_;
};

}  // namespace torchwan::transport::core
