#include "c10d_backend/store_adapter.h"

#include "transport/errors.h"

namespace torchwan::c10d_backend {

void C10dStoreAdapter::set(const std::string& key, const std::vector<uint8_t>& value) {
  store_->set(key, value);
}

std::vector<uint8_t> C10dStoreAdapter::get(const std::string& key,
                                           std::chrono::milliseconds timeout) {
  try {
    store_->wait({key}, timeout);
    return store_->get(key);
  } catch (const c10::Error& error) {
    throw transport::TransportError(transport::ErrorKind::kBootstrap,
                                    "store key '" + key + "' not available within " +
                                        std::to_string(timeout.count()) +
                                        " ms: " + error.what_without_backtrace());
  }
}

bool C10dStoreAdapter::contains(const std::string& key) {
  try {
    return store_->check({key});
  } catch (const c10::Error& error) {
    throw transport::TransportError(
        transport::ErrorKind::kBootstrap,
        "store check of key '" + key + "' failed: " + error.what_without_backtrace());
  }
}

}  // namespace torchwan::c10d_backend
