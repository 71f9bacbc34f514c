// One process group's transport over a shared Device: translates the group's ranks to the
// device's and puts the group's channel into every tag. Requests are the view's own, completed
// from the device's, so that sources and errors name group ranks; abort() fails only this group's
// requests (receives are canceled on the device; a send the link cannot take back finishes
// there on its own, as UCX sends do). The identity view (channel 0 over every device rank in
// order) passes calls straight through.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "transport/device.h"
#include "transport/transport.h"

namespace torchwan::transport {

class GroupView final : public Transport {
 public:
  GroupView(std::shared_ptr<Device> device, std::vector<int> members, uint32_t channel);
  ~GroupView() override;

  int rank() const override { return rank_; }
  int size() const override { return static_cast<int>(members_.size()); }
  std::string name() const override { return device_->links().name(); }
  const TransportOptions& options() const override { return device_->options(); }

  std::shared_ptr<Request> post(Posting posting) override;
  void abort(const std::string& reason) override;
  void set_peer_failure_handler(PeerFailureHandler handler) override;
  std::vector<PeerTraffic> traffic() const override;
  std::vector<LinkRung> links() const override;

 private:
  struct Shared;  // what completion callbacks use; they may outlive the view
  using Post = std::function<std::shared_ptr<Request>(Tag tag, Request::Callback done)>;

  std::shared_ptr<Request> post_on_channel(const char* operation, int peer, Tag tag, size_t length,
                                           Request::Callback callback, const Post& post_on_device);

  std::shared_ptr<Device> device_;
  std::vector<int> members_;  // group rank -> device rank
  const uint32_t channel_;
  const bool identity_;
  int rank_ = -1;
  std::shared_ptr<Shared> shared_;
  uint64_t failure_handler_id_ = 0;
};

}  // namespace torchwan::transport
