// A Transport that counts, per peer, the messages and bytes another Transport completes, and
// otherwise passes everything through unchanged (Transport::create puts it directly around UCX or
// ZeroMQ, inside encryption, so the counts are what crossed the network).
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "transport/traffic.h"
#include "transport/transport.h"

namespace torchwan::transport {

class CountingTransport final : public Transport {
 public:
  explicit CountingTransport(std::unique_ptr<Transport> inner);

  int rank() const override { return inner_->rank(); }
  int size() const override { return inner_->size(); }
  std::string name() const override { return inner_->name(); }
  const TransportOptions& options() const override { return inner_->options(); }

  std::shared_ptr<Request> isend(int peer, Tag tag, const void* data, size_t length,
                                 Request::Callback callback = {}) override;
  std::shared_ptr<Request> irecv(int peer, Tag tag, void* data, size_t length,
                                 Request::Callback callback = {}) override;
  std::shared_ptr<Request> irecv_any(Tag tag, void* data, size_t length,
                                     Request::Callback callback = {}) override;
  void abort(const std::string& reason) override { inner_->abort(reason); }
  void set_peer_failure_handler(PeerFailureHandler handler) override {
    inner_->set_peer_failure_handler(std::move(handler));
  }
  std::vector<PeerTraffic> traffic() const override { return counters_->snapshot(); }

 private:
  // Shared with the completion callbacks, which may outlive a transport being torn down.
  std::shared_ptr<TrafficCounters> counters_;
  std::unique_ptr<Transport> inner_;
};

}  // namespace torchwan::transport
