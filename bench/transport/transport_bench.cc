// Point-to-point throughput and latency of one transport between two processes on this host.
// Prints one JSON object per line so bench/transport.py can tabulate it beside iperf3.
//
//   transport_bench --transport ucx|zmq --lanes N --bytes B --iterations K
//                   [--encryption none|aes-256-gcm|chacha20-poly1305|on]
// With encryption, both processes use a job secret written for this run only.
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <stdexcept>
#include <string>
#include <vector>

#include "transport/secure/job_secret.h"
#include "transport/transport.h"

namespace {

using Clock = std::chrono::steady_clock;
using torchwan::transport::FileStore;
using torchwan::transport::Transport;
using torchwan::transport::TransportOptions;

struct Settings {
  TransportOptions options;
  size_t bytes = size_t{64} << 20;
  int iterations = 20;
  int window = 2;  // messages in flight, so one message's tail overlaps the next one's head
  int pings = 200;
};

Settings parse(int argc, char** argv) {
  Settings settings;
  settings.options.host = "127.0.0.1";
  for (int i = 1; i + 1 < argc; i += 2) {
    const std::string flag = argv[i];
    const std::string value = argv[i + 1];
    if (flag == "--transport") {
      settings.options.transport = value;
    } else if (flag == "--lanes") {
      settings.options.lanes = std::stoi(value);
    } else if (flag == "--bytes") {
      settings.bytes = std::stoull(value);
    } else if (flag == "--iterations") {
      settings.iterations = std::stoi(value);
    } else if (flag == "--encryption") {
      settings.options.encryption = value;
    } else {
      throw std::invalid_argument("unknown flag " + flag);
    }
  }
  settings.options.validate();
  return settings;
}

// Rank 1 streams `iterations` messages to rank 0 with `window` in flight; returns seconds.
double stream(Transport& transport, const Settings& settings, std::vector<uint8_t>& buffer) {
  const int peer = 1 - transport.rank();
  const auto start = Clock::now();
  for (int first = 0; first < settings.iterations; first += settings.window) {
    std::vector<std::shared_ptr<torchwan::transport::Request>> requests;
    for (int i = first; i < std::min(settings.iterations, first + settings.window); ++i) {
      const auto tag = static_cast<torchwan::transport::Tag>(i);
      requests.push_back(transport.rank() == 1
                             ? transport.isend(peer, tag, buffer.data(), buffer.size())
                             : transport.irecv(peer, tag, buffer.data(), buffer.size()));
    }
    for (auto& request : requests) request->wait();
  }
  return std::chrono::duration<double>(Clock::now() - start).count();
}

// Ping-pong of 8-byte messages; returns the mean one-way latency in microseconds.
double ping_pong(Transport& transport, const Settings& settings) {
  const int peer = 1 - transport.rank();
  uint64_t word = 0;
  const auto start = Clock::now();
  for (int i = 0; i < settings.pings; ++i) {
    const auto tag = static_cast<torchwan::transport::Tag>(1'000'000 + i);
    if (transport.rank() == 0) {
      transport.isend(peer, tag, &word, sizeof(word))->wait();
      transport.irecv(peer, tag, &word, sizeof(word))->wait();
    } else {
      transport.irecv(peer, tag, &word, sizeof(word))->wait();
      transport.isend(peer, tag, &word, sizeof(word))->wait();
    }
  }
  const double seconds = std::chrono::duration<double>(Clock::now() - start).count();
  return seconds / settings.pings / 2 * 1e6;
}

int run_rank(int rank, const Settings& settings, const std::string& store_directory) {
  FileStore store(store_directory);
  auto transport = Transport::create(settings.options, store, rank, 2);
  std::vector<uint8_t> buffer(settings.bytes, static_cast<uint8_t>(rank));
  stream(*transport, settings, buffer);  // warm-up: connection ramp and page faults
  const double seconds = stream(*transport, settings, buffer);
  const double latency_us = ping_pong(*transport, settings);
  if (rank == 0) {
    const double gbytes_per_s =
        static_cast<double>(settings.bytes) * settings.iterations / seconds / 1e9;
    std::printf(
        "{\"transport\": \"%s\", \"encryption\": \"%s\", \"name\": \"%s\", \"lanes\": %d, "
        "\"bytes\": %zu, \"iterations\": %d, \"seconds\": %.6f, \"gbytes_per_s\": %.4f, "
        "\"latency_us\": %.2f}\n",
        settings.options.transport.c_str(), settings.options.encryption.c_str(),
        transport->name().c_str(), settings.options.lanes, settings.bytes, settings.iterations,
        seconds, gbytes_per_s, latency_us);
  }
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  try {
    Settings settings = parse(argc, argv);
    char pattern[] = "/tmp/torchwan-bench-XXXXXX";
    const std::string directory = mkdtemp(pattern);
    if (settings.options.encryption != "none") {
      // Outside the store directory's keys: the FileStore names files after keys.
      settings.options.secret_file = directory + "/job.secret";
      torchwan::security::JobSecret::create_file(settings.options.secret_file);
    }
    const pid_t child = fork();
    if (child == 0) _exit(run_rank(1, settings, directory));
    const int status = run_rank(0, settings, directory);
    int child_status = 0;
    waitpid(child, &child_status, 0);
    std::filesystem::remove_all(directory);
    return status != 0 ? status : (WIFEXITED(child_status) ? WEXITSTATUS(child_status) : 1);
  } catch (const std::exception& error) {
    std::fprintf(stderr, "transport_bench: %s\n", error.what());
    return 1;
  }
}
