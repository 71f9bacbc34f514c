// A Transport around another one that passes every call through: the base of decorators
// (encryption, counting), which override only what they change.
#pragma once

#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "transport/transport.h"

namespace torchwan::transport {

class ForwardingTransport : public Transport {
 public:
  explicit ForwardingTransport(std::unique_ptr<Transport> inner) : inner_(std::move(inner)) {}

  int rank() const override { return inner_->rank(); }
  int size() const override { return inner_->size(); }
  std::string name() const override { return inner_->name(); }
  const TransportOptions& options() const override { return inner_->options(); }

  std::shared_ptr<Request> post(Posting posting) override {
    return inner_->post(std::move(posting));
  }
  void abort(const std::string& reason) override { inner_->abort(reason); }
  void set_peer_failure_handler(PeerFailureHandler handler) override {
    inner_->set_peer_failure_handler(std::move(handler));
  }
  std::vector<PeerTraffic> traffic() const override { return inner_->traffic(); }
  std::vector<LinkRung> links() const override { return inner_->links(); }

  // The transport underneath.
  Transport& inner() { return *inner_; }

 protected:
  std::unique_ptr<Transport> inner_;
};

}  // namespace torchwan::transport
