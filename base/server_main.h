// What the project's standalone servers (torchwan-coordinator, torchwan-relay) do between parsing
// their flags and exiting: block SIGINT and SIGTERM before any thread starts (every thread
// inherits the mask, and the main thread takes them synchronously with sigwait: no handler, no
// global flag), log at info unless TORCHWAN_LOG_LEVEL says otherwise (these binaries exist to be
// watched), start the server, print "<program> listening on <host>:<port>" (scripts and tests
// wait for that line), and stop it cleanly on the first signal.
#pragma once

#include <csignal>
#include <exception>
#include <iostream>
#include <memory>
#include <string>
#include <string_view>

namespace torchwan::base {
namespace server_main_detail {

sigset_t block_stop_signals();
void log_at_info_by_default();
void wait_for(const sigset_t& signals);

}  // namespace server_main_detail

// The tcp:// endpoint at which a process on this machine reaches a server bound to host:port: a
// wildcard host ("0.0.0.0", "*") is reached through loopback.
std::string local_endpoint(const std::string& host, int port);

// `make()` builds the server (a unique_ptr to a type with start(), which throws when it cannot
// listen, port() and stop()) once the signals are blocked. Returns the process's exit status:
// 0 after a clean stop, 1 when it could not start.
template <typename Make>
int serve_until_stopped(std::string_view program, const std::string& host, int port, Make make) {
  const sigset_t stop_signals = server_main_detail::block_stop_signals();
  server_main_detail::log_at_info_by_default();
  auto server = make();
  try {
    server->start();
  } catch (const std::exception& error) {  // the port is taken, no CURVE in this libzmq, ...
    std::cerr << program << ": cannot listen on " << host << ":" << port << ": " << error.what()
              << "\n";
    return 1;
  }
  std::cout << program << " listening on " << host << ":" << server->port() << std::endl;
  server_main_detail::wait_for(stop_signals);
  server->stop();
  return 0;
}

}  // namespace torchwan::base
