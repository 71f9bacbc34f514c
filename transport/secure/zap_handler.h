// The coordinator's ZAP handler (ZeroMQ's authentication hook, inproc://zeromq.zap.01): a CURVE
// client is admitted only when its public key is the one derived from the job secret. A client
// with another secret usually fails earlier (it cannot encrypt to the server's key); this catches
// a client that knows the server key but not the secret. Rejections are logged with the peer's
// address, never with key material.
#pragma once

#include <array>
#include <atomic>
#include <cstdint>
#include <memory>
#include <string>
#include <thread>
#include <zmq.hpp>

namespace spdlog {
class logger;
}

namespace torchwan::elastic {

class ZapHandler {
 public:
  // Binds the ZAP endpoint in `context` (one handler per context) and starts answering.
  // `allowed_public_key` is Z85-encoded, as CurveKeyPair holds it.
  ZapHandler(::zmq::context_t& context, const std::string& allowed_public_key);
  ~ZapHandler();  // stops the thread and closes the socket before the context goes
  ZapHandler(const ZapHandler&) = delete;
  ZapHandler& operator=(const ZapHandler&) = delete;

  uint64_t rejected() const { return rejected_; }

 private:
  void serve();

  std::shared_ptr<spdlog::logger> log_;
  std::array<uint8_t, 32> allowed_{};
  ::zmq::socket_t socket_;
  std::atomic<bool> stopping_{false};
  std::atomic<uint64_t> rejected_{0};
  std::thread thread_;
};

}  // namespace torchwan::elastic
