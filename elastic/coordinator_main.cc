// torchwan-coordinator: serves one job's membership until SIGINT or SIGTERM.
#include <spdlog/spdlog.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <iostream>
#include <memory>
#include <stdexcept>
#include <string>

#include "base/server_flags.h"
#include "base/server_main.h"
#include "elastic/coordinator.h"
#include "transport/secure/job_secret.h"

namespace {

using torchwan::base::for_each_flag;
using torchwan::base::parse_flag_number;

constexpr const char* kUsage =
    "usage: torchwan-coordinator --port P [--host H] [--job-id J] [--heartbeat-timeout-ms N]\n"
    "                            [--peer-lost-silence-ms N] [--recovery-grace-ms N]\n"
    "                            [--min-members N] [--no-quorum] [--secret-file FILE]\n"
    "                            [--standby]\n"
    "       torchwan-coordinator --make-secret FILE\n"
    "--standby: a failover coordinator beside the active one; it never forms a job itself, it\n"
    "    takes one over when a strict majority of the last epoch's members moves to it.\n"
    "--secret-file: only holders of this job secret may join (ZeroMQ CURVE); without it\n"
    "    the job is open to anyone who reaches the port.\n"
    "--make-secret: writes a new secret (mode 0600, never overwriting) and exits.\n";

torchwan::elastic::CoordinatorOptions parse(int argc, char** argv) {
  torchwan::elastic::CoordinatorOptions options;
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
                 "--recovery-grace-ms", "--min-members", "--secret-file"},
                {"--no-quorum", "--standby"}, on_flag);
  if (!have_port) throw std::invalid_argument("--port is required");
  return options;
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
  torchwan::elastic::CoordinatorOptions options;
  try {
    options = parse(argc, argv);
  } catch (const std::exception& error) {
    std::cerr << "torchwan-coordinator: " << error.what() << "\n" << kUsage;
    return 2;
  }
  return torchwan::base::serve_until_stopped(
      "torchwan-coordinator", options.host, options.port,
      [&] { return std::make_unique<torchwan::elastic::Coordinator>(options); });
}
