#include "transport/device.h"

#include <fmt/format.h>
#include <fmt/ranges.h>

#include <algorithm>
#include <utility>

#include "transport/group_view.h"

namespace torchwan::transport {

std::shared_ptr<Device> Device::create(std::unique_ptr<Transport> links) {
  std::shared_ptr<Device> device(new Device(std::move(links)));
  device->links_->set_peer_failure_handler(
      [handlers = device->failure_handlers_](int peer, const std::string& why) {
        handlers->peer_lost(peer, why);
      });
  return device;
}

Device::Device(std::unique_ptr<Transport> links) : links_(std::move(links)) {}

Device::~Device() = default;

std::unique_ptr<Transport> Device::open_view(std::vector<int> members, uint32_t channel) {
  if (channel > kMaxChannel) {
    throw TransportError(ErrorKind::kInvalidArgument,
                         fmt::format("group channel {} is above {}: too many process groups over "
                                     "one transport device",
                                     channel, kMaxChannel));
  }
  std::vector<bool> seen(static_cast<size_t>(size()), false);
  for (const int member : members) {
    if (member < 0 || member >= size() || seen[static_cast<size_t>(member)]) {
      throw TransportError(
          ErrorKind::kInvalidArgument,
          fmt::format("group members [{}] must be distinct ranks of the {}-process device",
                      fmt::join(members, ", "), size()));
    }
    seen[static_cast<size_t>(member)] = true;
  }
  if (!seen[static_cast<size_t>(rank())]) {
    throw TransportError(ErrorKind::kInvalidArgument,
                         fmt::format("group members [{}] do not include this process (rank {})",
                                     fmt::join(members, ", "), rank()));
  }
  return std::make_unique<GroupView>(shared_from_this(), std::move(members), channel);
}

uint64_t Device::add_peer_failure_handler(Transport::PeerFailureHandler handler) {
  std::lock_guard<std::mutex> lock(failure_handlers_->mutex);
  failure_handlers_->handlers.emplace(failure_handlers_->next_id, std::move(handler));
  return failure_handlers_->next_id++;
}

void Device::remove_peer_failure_handler(uint64_t id) {
  std::lock_guard<std::mutex> lock(failure_handlers_->mutex);
  failure_handlers_->handlers.erase(id);
}

void Device::FailureHandlers::peer_lost(int peer, const std::string& why) {
  std::vector<Transport::PeerFailureHandler> current;
  {
    std::lock_guard<std::mutex> lock(mutex);
    for (const auto& [id, handler] : handlers) {
      if (handler) current.push_back(handler);
    }
  }
  // Outside the lock: a handler may open or close views.
  for (const auto& handler : current) handler(peer, why);
}

}  // namespace torchwan::transport
