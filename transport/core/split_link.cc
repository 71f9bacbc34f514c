#include "transport/core/split_link.h"

#include <algorithm>
#include <utility>

#include "transport/errors.h"

namespace torchwan::transport::core {

SplitLink::SplitLink(std::unique_ptr<Link> primary, std::unique_ptr<Link> secondary,
                     std::vector<bool> secondary_serves, std::string who)
    : primary_(std::move(primary)),
      secondary_(std::move(secondary)),
      secondary_serves_(std::move(secondary_serves)),
      who_(std::move(who)),
      any_source_(who_) {
  if (!primary_->event_descriptor()) {
    throw TransportError(ErrorKind::kInternal,
                         who_ + ": the primary link offers no descriptor to sleep on");
  }
}

Link& SplitLink::serving(int peer) const {
  return secondary_serves_[static_cast<size_t>(peer)] ? *secondary_ : *primary_;
}

std::vector<LinkRung> SplitLink::rungs() const {
  std::vector<LinkRung> rungs = primary_->rungs();
  const std::vector<LinkRung> secondary = secondary_->rungs();
  for (size_t peer = 0; peer < rungs.size() && peer < secondary.size(); ++peer) {
    if (secondary_serves_[peer]) rungs[peer] = secondary[peer];
  }
  return rungs;
}

void SplitLink::start_send(PostedSend send) {
  Link& link = serving(send.peer);
  link.start_send(std::move(send));
}

void SplitLink::start_receive(PostedReceive receive) {
  if (receive.peer != kAnySource) {
    Link& link = serving(receive.peer);
    link.start_receive(std::move(receive));
    return;
  }
  any_source_.add(std::move(receive));
  match_any_source();
}

std::optional<int> SplitLink::claimable_sender(const PostedReceive& receive) {
  // A link names only peers it serves; the check keeps a stray answer from routing a receive to
  // a link that will never see the sender's messages.
  for (Link* link : {primary_.get(), secondary_.get()}) {
    const std::optional<int> sender = link->claimable_sender(receive);
    if (sender && &serving(*sender) == link) return sender;
  }
  return std::nullopt;
}

bool SplitLink::match_any_source() {
  if (any_source_.empty()) return false;
  return any_source_.match(
      std::nullopt, [this](const PostedReceive& receive) { return claimable_sender(receive); },
      [this](PostedReceive receive) {
        Link& link = serving(receive.peer);
        link.start_receive(std::move(receive));
      });
}

void SplitLink::cancel(uint64_t id) {
  if (any_source_.cancel(id)) return;
  primary_->cancel(id);
  secondary_->cancel(id);
}

void SplitLink::abort(const Failure& failure, const std::string& reason) {
  any_source_.fail_all(std::make_exception_ptr(TransportError(
      failure.kind, who_ + ": receive from any rank failed: " + failure.message, kAnySource)));
  primary_->abort(failure, reason);
  secondary_->abort(failure, reason);
}

bool SplitLink::progress_once() {
  // Both links every round: neither waits for the other's quiet.
  const bool primary = primary_->progress_once();
  const bool secondary = secondary_->progress_once();
  // After both: a message either queued this round is found before the thread may sleep.
  const bool matched = match_any_source();
  return primary || secondary || matched;
}

bool SplitLink::prepare_to_sleep() {
  return primary_->prepare_to_sleep() && secondary_->prepare_to_sleep();
}

std::chrono::milliseconds SplitLink::sleep_limit() const {
  return shorter_timeout(primary_->sleep_limit(), secondary_->sleep_limit());
}

void SplitLink::sleep(const std::vector<int>& extra_fds, std::chrono::milliseconds timeout) {
  std::vector<int> fds = extra_fds;
  fds.push_back(*primary_->event_descriptor());  // checked by the constructor
  // The secondary's sleep knows only its own timers: the primary's bound it too.
  secondary_->sleep(fds, shorter_timeout(timeout, primary_->sleep_limit()));
}

void SplitLink::leave() {
  any_source_.fail_all(std::make_exception_ptr(TransportError(
      ErrorKind::kAborted, who_ + ": receive from any rank failed: the transport is shutting down",
      kAnySource)));
  secondary_->leave();
  primary_->leave();
}

}  // namespace torchwan::transport::core
