#include "c10d_backend/shared_device.h"

#include <string>

#include "c10d_backend/store_adapter.h"
#include "transport/errors.h"

namespace torchwan::c10d_backend {

namespace {

constexpr const char* kChannelCounterKey = "tw/channels";
constexpr const char* kGroupChannelKey = "tw/channel";

}  // namespace

SharedDevice::SharedDevice(const std::shared_ptr<transport::Device>& device,
                           c10::intrusive_ptr<c10d::Store> store)
    : device_(device), store_(std::move(store)) {}

uint32_t SharedDevice::channel_for_group(const c10::intrusive_ptr<c10d::Store>& group_store,
                                         int group_rank, std::chrono::milliseconds timeout) {
  if (group_rank == 0) {
    // Counts from 1: channel 0 is the group that created the device.
    const int64_t channel = store_->add(kChannelCounterKey, 1);
    if (channel < 1 || channel > static_cast<int64_t>(transport::kMaxChannel)) {
      throw transport::TransportError(
          transport::ErrorKind::kInvalidArgument,
          "more than " + std::to_string(transport::kMaxChannel) +
              " process groups were created over this job's transport device");
    }
    const std::string text = std::to_string(channel);
    group_store->set(kGroupChannelKey, std::vector<uint8_t>(text.begin(), text.end()));
    return static_cast<uint32_t>(channel);
  }
  C10dStoreAdapter adapter(group_store);
  const std::vector<uint8_t> bytes = adapter.get(kGroupChannelKey, timeout);
  const std::string text(bytes.begin(), bytes.end());
  try {
    return static_cast<uint32_t>(std::stoul(text));
  } catch (const std::exception&) {
    throw transport::TransportError(transport::ErrorKind::kProtocol,
                                    "the group's channel number in the store is '" + text + "'");
  }
}

}  // namespace torchwan::c10d_backend
