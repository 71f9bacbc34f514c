#include "transport/group_view.h"

#include <fmt/format.h>

#include <mutex>
#include <unordered_map>
#include <utility>

#include "transport/request_arguments.h"

namespace torchwan::transport {

struct GroupView::Shared {
  struct Pending {
    std::weak_ptr<Request> outer;
    std::weak_ptr<Request> inner;
  };

  std::vector<int> group_rank_of;  // device rank -> group rank; -1 for other processes
  std::mutex mutex;
  bool aborted = false;
  std::string abort_reason;
  PeerFailureHandler handler;
  uint64_t next_id = 0;
  std::unordered_map<uint64_t, Pending> pending;

  // The device's error with its peer named by group rank (the message keeps the process rank,
  // which is what the network logs and other groups show).
  std::exception_ptr translate(std::exception_ptr error) const {
    try {
      std::rethrow_exception(error);
    } catch (const TransportError& failure) {
      const int device_peer = failure.peer();
      if (device_peer < 0 || device_peer >= static_cast<int>(group_rank_of.size())) return error;
      const int peer = group_rank_of[static_cast<size_t>(device_peer)];
      if (peer == device_peer) return error;
      return std::make_exception_ptr(
          TransportError(failure.kind(),
                         fmt::format("{} (process {} is rank {} of this group)", failure.what(),
                                     device_peer, peer),
                         peer));
    } catch (...) {
      return error;
    }
  }

  std::exception_ptr aborted_error() const {
    return std::make_exception_ptr(TransportError(ErrorKind::kAborted, abort_reason));
  }
};

namespace {

bool is_identity(const std::vector<int>& members, uint32_t channel, int device_size) {
  if (channel != 0 || static_cast<int>(members.size()) != device_size) return false;
  for (size_t i = 0; i < members.size(); ++i) {
    if (members[i] != static_cast<int>(i)) return false;
  }
  return true;
}

}  // namespace

GroupView::GroupView(std::shared_ptr<Device> device, std::vector<int> members, uint32_t channel)
    : device_(std::move(device)),
      members_(std::move(members)),
      channel_(channel),
      identity_(is_identity(members_, channel_, device_->size())),
      shared_(std::make_shared<Shared>()) {
  shared_->group_rank_of.assign(static_cast<size_t>(device_->size()), -1);
  for (size_t i = 0; i < members_.size(); ++i) {
    shared_->group_rank_of[static_cast<size_t>(members_[i])] = static_cast<int>(i);
  }
  rank_ = shared_->group_rank_of[static_cast<size_t>(device_->rank())];
  failure_handler_id_ = device_->add_peer_failure_handler(
      [shared = shared_](int device_peer, const std::string& why) {
        const int peer = shared->group_rank_of[static_cast<size_t>(device_peer)];
        if (peer < 0) return;  // not one of this group's processes
        PeerFailureHandler handler;
        {
          std::lock_guard<std::mutex> lock(shared->mutex);
          handler = shared->handler;
        }
        if (handler) handler(peer, why);
      });
}

GroupView::~GroupView() {
  device_->remove_peer_failure_handler(failure_handler_id_);
  if (identity_) return;  // the device's own teardown settles its requests
  // Gives the buffers of receives nobody will satisfy back; the device and other groups go on.
  std::vector<std::shared_ptr<Request>> inner;
  {
    std::lock_guard<std::mutex> lock(shared_->mutex);
    for (auto& [id, pending] : shared_->pending) {
      if (auto request = pending.inner.lock()) inner.push_back(std::move(request));
    }
  }
  for (auto& request : inner) request->cancel();
}

std::shared_ptr<Request> GroupView::post(Posting posting) {
  check_request_arguments(name(), rank_, size(), posting);
  const int peer = posting.peer;
  const char* call = posting.call();
  const Tag tag = posting.tag;
  const size_t length = posting.length;
  Request::Callback callback = std::move(posting.callback);
  return post_on_channel(call, peer, tag, length, std::move(callback),
                         [&](Tag device_tag, Request::Callback done) {
                           Posting on_device = posting;
                           if (peer != kAnySource) {
                             on_device.peer = members_[static_cast<size_t>(peer)];
                           }
                           on_device.tag = device_tag;
                           on_device.callback = std::move(done);
                           return device_->links().post(std::move(on_device));
                         });
}

std::shared_ptr<Request> GroupView::post_on_channel(const char* operation, int peer, Tag tag,
                                                    size_t length, Request::Callback callback,
                                                    const Post& post_on_device) {
  if (tag >= kMaxGroupTag) {
    throw TransportError(ErrorKind::kInvalidArgument,
                         fmt::format("{}: {}: tag {} is not below 2^32 (the bits above carry the "
                                     "process group's channel)",
                                     name(), operation, tag),
                         peer);
  }
  if (identity_) return post_on_device(tag, std::move(callback));

  auto outer = std::make_shared<Request>(peer, tag, length, std::move(callback));
  uint64_t id = 0;
  {
    std::lock_guard<std::mutex> lock(shared_->mutex);
    if (shared_->aborted) {
      outer->fail(shared_->aborted_error());
      return outer;
    }
    id = shared_->next_id++;
    shared_->pending[id].outer = outer;
  }
  const Tag device_tag = (Tag{channel_} << 32) | tag;
  std::shared_ptr<Request> inner = post_on_device(
      device_tag, [shared = shared_, outer, id, any = peer == kAnySource](Request& request) {
        {
          std::lock_guard<std::mutex> lock(shared->mutex);
          shared->pending.erase(id);
        }
        if (!request.ok()) {
          outer->fail(shared->translate(request.error()));
          return;
        }
        if (any) {
          const int source = shared->group_rank_of[static_cast<size_t>(request.source())];
          if (source < 0) {
            outer->fail(std::make_exception_ptr(TransportError(
                ErrorKind::kProtocol,
                fmt::format("process {} sent a message in a group it is not a member of",
                            request.source()))));
            return;
          }
          outer->set_source(source);
        }
        outer->complete_part();
      });
  {
    std::lock_guard<std::mutex> lock(shared_->mutex);
    auto found = shared_->pending.find(id);
    if (found != shared_->pending.end()) found->second.inner = inner;
  }
  outer->forward_cancel_to(inner);
  return outer;
}

void GroupView::abort(const std::string& reason) {
  if (identity_) {
    device_->links().abort(reason);
    return;
  }
  std::vector<Shared::Pending> pending;
  {
    std::lock_guard<std::mutex> lock(shared_->mutex);
    if (shared_->aborted) return;
    shared_->aborted = true;
    shared_->abort_reason = reason;
    for (auto& [id, entry] : shared_->pending) pending.push_back(entry);
  }
  const auto error = shared_->aborted_error();
  for (auto& entry : pending) {
    if (auto outer = entry.outer.lock()) outer->fail(error);
    if (auto inner = entry.inner.lock()) inner->cancel();
  }
}

void GroupView::set_peer_failure_handler(PeerFailureHandler handler) {
  // The device reports lost processes to every view, the identity view among them.
  std::lock_guard<std::mutex> lock(shared_->mutex);
  shared_->handler = std::move(handler);
}

namespace {

// Per-process entries of the device (index = device rank) in this group's rank order; the
// identity view's are already in that order.
template <typename Entry>
std::vector<Entry> in_group_order(std::vector<Entry> by_process, bool identity,
                                  const std::vector<int>& members) {
  if (identity || by_process.empty()) return by_process;
  std::vector<Entry> result;
  result.reserve(members.size());
  for (const int member : members) result.push_back(by_process[static_cast<size_t>(member)]);
  return result;
}

}  // namespace

std::vector<PeerTraffic> GroupView::traffic() const {
  // Another group's view over the same processes: its own counts come from a CountingTransport
  // around it; here the processes' totals.
  return in_group_order(device_->traffic(), identity_, members_);
}

std::vector<LinkRung> GroupView::links() const {
  return in_group_order(device_->link_rungs(), identity_, members_);
}

}  // namespace torchwan::transport
