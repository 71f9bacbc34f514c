// Lets the transport bootstrap through the c10d::Store that torch hands every backend.
#pragma once

#include <torch/csrc/distributed/c10d/Store.hpp>

#include "transport/store.h"

namespace torchwan::c10d_backend {

class C10dStoreAdapter final : public transport::Store {
 public:
  explicit C10dStoreAdapter(c10::intrusive_ptr<c10d::Store> store) : store_(std::move(store)) {}
  void set(const std::string& key, const std::vector<uint8_t>& value) override;
  std::vector<uint8_t> get(const std::string& key, std::chrono::milliseconds timeout) override;
  bool contains(const std::string& key) override;

 private:
  c10::intrusive_ptr<c10d::Store> store_;
};

}  // namespace torchwan::c10d_backend
