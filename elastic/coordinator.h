// The membership coordinator as an embeddable object: a ROUTER socket served by its own thread.
// torchwan-coordinator (coordinator_main.cc) is a thin command line around it; tests and tools
// run it in-process.
#pragma once

#include <atomic>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <zmq.hpp>

#include "elastic/coordinator_core.h"
#include "elastic/coordinator_options.h"
#include "transport/secure/zap_handler.h"

namespace spdlog {
class logger;
}

namespace torchwan::elastic {

class Coordinator {
 public:
  explicit Coordinator(CoordinatorOptions options);
  ~Coordinator();  // stops serving; the ZAP handler goes before the context
  Coordinator(const Coordinator&) = delete;
  Coordinator& operator=(const Coordinator&) = delete;

  // Binds tcp://host:port and starts serving. Throws zmq::error_t when the port is unavailable.
  void start();
  // Stops serving and closes the socket; members notice only by the silence. Idempotent.
  void stop();
  bool running() const { return thread_.joinable(); }

  // The bound port (useful with options.port = 0) and an endpoint members on this host can use.
  int port() const { return port_; }
  std::string endpoint() const;

  CoordinatorSnapshot snapshot() const;
  // Connections refused by the ZAP handler (a key not derived from the job secret).
  uint64_t refused_connections() const { return zap_ ? zap_->rejected() : 0; }

 private:
  void serve(::zmq::socket_t router, int monitor_id);
  void send_all(::zmq::socket_t& router);

  CoordinatorOptions options_;
  std::shared_ptr<spdlog::logger> log_;
  ::zmq::context_t context_;
  std::unique_ptr<ZapHandler> zap_;  // with a secret; lives as long as the context allows
  int monitors_ = 0;                 // names each start()'s socket monitor uniquely
  int port_ = 0;
  std::atomic<bool> stopping_{false};
  mutable std::mutex mutex_;  // guards core_: the serving thread decides, snapshot() reads
  std::unique_ptr<CoordinatorCore> core_;
  std::thread thread_;
};

}  // namespace torchwan::elastic
