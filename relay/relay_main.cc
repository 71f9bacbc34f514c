// torchwan-relay: forwards lanes between job members that cannot reach each other, until SIGINT
// or SIGTERM. See docs/relay.md.
#include <cstdlib>
#include <iostream>
#include <memory>
#include <stdexcept>
#include <string>

#include "base/server_flags.h"
#include "base/server_main.h"
#include "relay/relay_server.h"
#include "transport/secure/job_secret.h"

namespace {

using torchwan::base::for_each_flag;
using torchwan::base::parse_flag_number;

constexpr const char* kUsage =
    "usage: torchwan-relay --port P [--bind ADDR] [--secret-file FILE] [--max-streams N]\n"
    "                      [--window-bytes W] [--max-memory-mb M] [--congestion NAME]\n"
    "--bind: address to listen on (default 0.0.0.0).\n"
    "--secret-file: only holders of this job secret may connect (ZeroMQ CURVE); also read\n"
    "    from TORCHWAN_SECRET_FILE. Without it anyone who reaches the port may use the relay.\n"
    "--max-streams: streams (sender, receiver, lane) carrying bytes at once (default 1024).\n"
    "--window-bytes: unacknowledged bytes one stream may have (default 16777216).\n"
    "--max-memory-mb: streams x window stays below this (default 4096).\n"
    "--congestion: TCP congestion control of accepted connections, e.g. bbr (default 'system':\n"
    "    the system's default).\n";

torchwan::relay::RelayOptions parse(int argc, char** argv) {
  torchwan::relay::RelayOptions options;
  bool have_port = false;
  std::string secret_file;
  if (const char* env = std::getenv("TORCHWAN_SECRET_FILE"); env != nullptr) secret_file = env;
  const auto on_flag = [&](const std::string& flag, const std::string& value) {
    if (flag == "--port") {
      const uint64_t port = parse_flag_number(flag, value);
      if (port > 65535) throw std::invalid_argument("--port must be below 65536");
      options.port = static_cast<int>(port);
      have_port = true;
    } else if (flag == "--bind") {
      options.host = value;
    } else if (flag == "--secret-file") {
      secret_file = value;
    } else if (flag == "--max-streams") {
      options.max_streams = parse_flag_number(flag, value);
    } else if (flag == "--window-bytes") {
      options.window_bytes = parse_flag_number(flag, value);
      options.max_chunk_bytes =
          static_cast<uint32_t>(std::min<uint64_t>(options.max_chunk_bytes, options.window_bytes));
    } else if (flag == "--congestion") {
      options.congestion = value == "system" ? std::string() : value;
    } else {  // --max-memory-mb
      options.max_memory_bytes = parse_flag_number(flag, value) << 20;
    }
  };
  for_each_flag(argc, argv, kUsage,
                {"--port", "--bind", "--secret-file", "--max-streams", "--window-bytes",
                 "--max-memory-mb", "--congestion"},
                {}, on_flag);
  if (!have_port) throw std::invalid_argument("--port is required");
  if (!secret_file.empty()) options.secret = torchwan::security::JobSecret::load_file(secret_file);
  torchwan::relay::validate(options);
  return options;
}

}  // namespace

int main(int argc, char** argv) {
  torchwan::relay::RelayOptions options;
  try {
    options = parse(argc, argv);
  } catch (const std::exception& error) {
    std::cerr << "torchwan-relay: " << error.what() << "\n" << kUsage;
    return 2;
  }
  return torchwan::base::serve_until_stopped("torchwan-relay", options.host, options.port, [&] {
    return std::make_unique<torchwan::relay::RelayServer>(options);
  });
}
