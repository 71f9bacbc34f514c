// torchwan-coordinator: serves one job's membership until SIGINT or SIGTERM; with --relay-port,
// also a torchwan relay (docs/relay.md) on the same host and secret, for members that cannot
// reach each other.
#include <spdlog/spdlog.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <iostream>
#include <memory>
#include <optional>
#include <stdexcept>
#include <string>

#include "base/server_flags.h"
#include "base/server_main.h"
#include "elastic/coordinator.h"
#include "relay/relay_server.h"
#include "transport/secure/job_secret.h"

namespace {

using torchwan::base::for_each_flag;
using torchwan::base::parse_flag_number;

constexpr const char* kUsage =
    "usage: torchwan-coordinator --port P [--host H] [--job-id J] [--heartbeat-timeout-ms N]\n"
    "                            [--peer-lost-silence-ms N] [--recovery-grace-ms N]\n"
    "                            [--min-members N] [--no-quorum] [--secret-file FILE]\n"
    "                            [--standby] [--relay-port R]\n"
    "       torchwan-coordinator --make-secret FILE\n"
    "--standby: a failover coordinator beside the active one; it never forms a job itself, it\n"
    "    takes one over when a strict majority of the last epoch's members moves to it.\n"
    "--secret-file: only holders of this job secret may join (ZeroMQ CURVE); without it\n"
    "    the job is open to anyone who reaches the port.\n"
    "--relay-port: also runs a torchwan-relay on port R of the same host, admitting the holders\n"
    "    of the same secret (members give it as TORCHWAN_RELAY=host:R).\n"
    "--make-secret: writes a new secret (mode 0600, never overwriting) and exits.\n";

// What the flags ask for: the coordinator, and the relay beside it when --relay-port is given.
struct Settings {
  torchwan::elastic::CoordinatorOptions coordinator;
  std::optional<int> relay_port;
};

// The coordinator, with a relay in the same process when asked for: started and stopped together.
class CoordinatorServer {
 public:
  explicit CoordinatorServer(const Settings& settings) : coordinator_(settings.coordinator) {
    if (settings.relay_port) {
      torchwan::relay::RelayOptions relay;
      relay.host = settings.coordinator.host;
      relay.port = *settings.relay_port;
      relay.secret = settings.coordinator.secret;
      relay_.emplace(relay);
    }
  }
  void start() {
    coordinator_.start();
    if (relay_) relay_->start();  // logs "relay: listening on host:port"
  }
  int port() const { return coordinator_.port(); }
  void stop() {
    if (relay_) relay_->stop();
    coordinator_.stop();
  }

 private:
  torchwan::elastic::Coordinator coordinator_;
  std::optional<torchwan::relay::RelayServer> relay_;
};

Settings parse(int argc, char** argv) {
  Settings settings;
  torchwan::elastic::CoordinatorOptions& options = settings.coordinator;
  bool have_port = false;
  const auto on_flag = [&](const std::string& flag, const std::string& value) {
    if (flag == "--no-quorum") {
      options.require_majority = false;
    } else if (flag == "--standby") {
      options.standby = true;
    } else if (flag == "--port") {
      options.port = static_cast<int>(parse_flag_number(flag, value));
      have_port = true;
    } else if (flag == "--host") {
      options.host = value;
    } else if (flag == "--job-id") {
      options.job_id = value;
    } else if (flag == "--heartbeat-timeout-ms") {
      options.heartbeat_timeout = std::chrono::milliseconds(parse_flag_number(flag, value));
    } else if (flag == "--peer-lost-silence-ms") {
      options.peer_lost_silence = std::chrono::milliseconds(parse_flag_number(flag, value));
    } else if (flag == "--relay-port") {
      const uint64_t port = parse_flag_number(flag, value);
      if (port > 65535) throw std::invalid_argument("--relay-port must be below 65536");
      settings.relay_port = static_cast<int>(port);
    } else if (flag == "--secret-file") {
      options.secret = torchwan::security::JobSecret::load_file(value);
    } else if (flag == "--recovery-grace-ms") {
      options.recovery_grace = std::chrono::milliseconds(parse_flag_number(flag, value));
    } else {  // --min-members
      options.min_members = static_cast<size_t>(parse_flag_number(flag, value));
    }
  };
  for_each_flag(argc, argv, kUsage,
                {"--port", "--host", "--job-id", "--heartbeat-timeout-ms", "--peer-lost-silence-ms",
                 "--recovery-grace-ms", "--min-members", "--secret-file", "--relay-port"},
                {"--no-quorum", "--standby"}, on_flag);
  if (!have_port) throw std::invalid_argument("--port is required");
  if (settings.relay_port && *settings.relay_port != 0 &&
      *settings.relay_port == settings.coordinator.port) {
    throw std::invalid_argument("--relay-port must differ from --port");
  }
  return settings;
}

// --make-secret FILE: the one step an operator needs before a secured job.
int make_secret(const std::string& path) {
  try {
    const auto secret = torchwan::security::JobSecret::create_file(path);
    std::cout << "wrote a new job secret to " << path << " (fingerprint " << secret.fingerprint()
              << "); copy it, mode 0600, to every member and pass --secret-file " << path << "\n";
    return 0;
  } catch (const std::exception& error) {
    std::cerr << "torchwan-coordinator: " << error.what() << "\n";
    return 1;
  }
}

}  // namespace

int main(int argc, char** argv) {
  if (argc >= 2 && std::string(argv[1]) == "--make-secret") {
    if (argc != 3) {
      std::cerr << "torchwan-coordinator: --make-secret takes exactly one FILE\n" << kUsage;
      return 2;
    }
    return make_secret(argv[2]);
  }
  Settings settings;
  try {
    settings = parse(argc, argv);
  } catch (const std::exception& error) {
    std::cerr << "torchwan-coordinator: " << error.what() << "\n" << kUsage;
    return 2;
  }
  return torchwan::base::serve_until_stopped(
      "torchwan-coordinator", settings.coordinator.host, settings.coordinator.port,
      [&] { return std::make_unique<CoordinatorServer>(settings); });
}
