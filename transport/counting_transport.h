// A Transport that counts, per peer, the messages and bytes another Transport completes, and
// otherwise passes everything through unchanged (Transport::create puts it directly around UCX or
// ZeroMQ, inside encryption, so the counts are what crossed the network).
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "transport/forwarding_transport.h"
#include "transport/traffic.h"

namespace torchwan::transport {

class CountingTransport final : public ForwardingTransport {
 public:
  explicit CountingTransport(std::unique_ptr<Transport> inner);

  std::shared_ptr<Request> post(Posting posting) override;
  std::vector<PeerTraffic> traffic() const override { return counters_->snapshot(); }

 private:
  // Shared with the completion callbacks, which may outlive a transport being torn down.
  std::shared_ptr<TrafficCounters> counters_;
};

}  // namespace torchwan::transport
