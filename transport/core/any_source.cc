#include "transport/core/any_source.h"

#include <vector>

#include "transport/errors.h"

namespace torchwan::transport::core {

void AnySourceReceives::add(PostedReceive receive) {
  ids_[receive.id] = receive.tag;
  by_tag_[receive.tag].push_back(std::move(receive));
}

bool AnySourceReceives::match(std::optional<Tag> tag, const FindSender& find_sender,
                              const Start& start) {
  bool matched = false;
  // `start` may complete a receive whose callback posts the next one, which matches inside this
  // call: queues are only emptied, never erased, until the outermost match ends.
  ++depth_;
  auto queue = tag ? by_tag_.find(*tag) : by_tag_.begin();
  for (; queue != by_tag_.end(); ++queue) {
    while (!queue->second.empty()) {
      const std::optional<int> sender = find_sender(queue->second.front());
      if (!sender) break;
      PostedReceive receive = std::move(queue->second.front());
      queue->second.pop_front();
      ids_.erase(receive.id);
      receive.peer = *sender;
      receive.request->set_source(*sender);
      matched = true;
      start(std::move(receive));
    }
    if (tag) break;
  }
  if (--depth_ == 0) std::erase_if(by_tag_, [](const auto& entry) { return entry.second.empty(); });
  return matched;
}

bool AnySourceReceives::cancel(uint64_t id) {
  const auto found = ids_.find(id);
  if (found == ids_.end()) return false;
  auto& queue = by_tag_[found->second];
  ids_.erase(found);
  for (auto it = queue.begin(); it != queue.end(); ++it) {
    if (it->id != id) continue;
    std::shared_ptr<Request> request = std::move(it->request);
    const std::string what = "receive from any rank (tag " + std::to_string(it->tag) + ", " +
                             std::to_string(it->length) + " bytes)";
    queue.erase(it);
    request->fail(std::make_exception_ptr(TransportError(
        ErrorKind::kCanceled, who_ + ": " + what + " canceled by its owner", kAnySource)));
    break;
  }
  return true;
}

void AnySourceReceives::fail_all(const std::exception_ptr& error) {
  std::vector<std::shared_ptr<Request>> failed;
  for (auto& [tag, queue] : by_tag_) {
    for (PostedReceive& receive : queue) failed.push_back(std::move(receive.request));
  }
  for (auto& [tag, queue] : by_tag_) queue.clear();
  if (depth_ == 0) by_tag_.clear();
  ids_.clear();
  // Callbacks run once the queue is consistent; they may post new receives.
  for (auto& request : failed) request->fail(error);
}

}  // namespace torchwan::transport::core
