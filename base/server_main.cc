#include "base/server_main.h"

#include <pthread.h>

#include <cstdlib>

namespace torchwan::base {

std::string local_endpoint(const std::string& host, int port) {
  const std::string reachable = host == "0.0.0.0" || host == "*" ? "127.0.0.1" : host;
  return "tcp://" + reachable + ":" + std::to_string(port);
}

namespace server_main_detail {

sigset_t block_stop_signals() {
  sigset_t signals;
  sigemptyset(&signals);
  sigaddset(&signals, SIGINT);
  sigaddset(&signals, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &signals, nullptr);
  return signals;
}

void log_at_info_by_default() {
  if (std::getenv("TORCHWAN_LOG_LEVEL") == nullptr) setenv("TORCHWAN_LOG_LEVEL", "info", 0);
}

void wait_for(const sigset_t& signals) {
  int signal_number = 0;
  sigwait(&signals, &signal_number);
}

}  // namespace server_main_detail
}  // namespace torchwan::base
