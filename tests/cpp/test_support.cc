#include "test_support.h"

#include <stdlib.h>

#include <exception>
#include <mutex>
#include <stdexcept>
#include <system_error>
#include <thread>

#include "security/job_secret.h"

namespace torchwan::testing {

std::vector<std::string> transport_kinds() { return {"ucx", "zmq"}; }

transport::TransportOptions loopback_options(const std::string& kind, int lanes) {
  transport::TransportOptions options;
  options.transport = kind;
  options.lanes = lanes;
  options.host = "127.0.0.1";
  options.connect_timeout = std::chrono::milliseconds(30000);
  options.peer_timeout = std::chrono::milliseconds(5000);
  return options;
}

std::vector<std::unique_ptr<transport::Transport>> connect_ranks(
    const transport::TransportOptions& options, int size) {
  transport::MemoryStore store;
  std::vector<std::unique_ptr<transport::Transport>> ranks(static_cast<size_t>(size));
  run_on_threads(size, [&](int rank) {
    ranks[static_cast<size_t>(rank)] = transport::Transport::create(options, store, rank, size);
  });
  return ranks;
}

void run_on_threads(int size, const std::function<void(int rank)>& body) {
  std::mutex mutex;
  std::exception_ptr first_error;
  std::vector<std::thread> threads;
  for (int rank = 0; rank < size; ++rank) {
    threads.emplace_back([&, rank] {
      try {
        body(rank);
      } catch (...) {
        std::lock_guard<std::mutex> lock(mutex);
        if (!first_error) first_error = std::current_exception();
      }
    });
  }
  for (auto& thread : threads) thread.join();
  if (first_error) std::rethrow_exception(first_error);
}

std::vector<uint8_t> pattern_bytes(size_t length, uint32_t seed) {
  std::vector<uint8_t> bytes(length);
  uint64_t state = 0x9E3779B97F4A7C15ull ^ seed;
  for (size_t i = 0; i < length; ++i) {
    // xorshift: cheap, and every byte differs from its neighbours.
    state ^= state << 13;
    state ^= state >> 7;
    state ^= state << 17;
    bytes[i] = static_cast<uint8_t>(state);
  }
  return bytes;
}

std::vector<ConnectOutcome> connect_each(
    int size, const std::function<transport::TransportOptions(int rank)>& options_of,
    transport::Store& store) {
  std::vector<ConnectOutcome> outcomes(static_cast<size_t>(size));
  run_on_threads(size, [&](int rank) {
    try {
      outcomes[static_cast<size_t>(rank)].transport =
          transport::Transport::create(options_of(rank), store, rank, size);
    } catch (const transport::TransportError& error) {
      outcomes[static_cast<size_t>(rank)].error = error;
    }
  });
  return outcomes;
}

std::vector<std::unique_ptr<transport::Transport>> take_transports(
    std::vector<ConnectOutcome>& outcomes) {
  std::vector<std::unique_ptr<transport::Transport>> ranks;
  for (auto& outcome : outcomes) {
    if (outcome.error) throw *outcome.error;
    ranks.push_back(std::move(outcome.transport));
  }
  return ranks;
}

SecretDir::SecretDir() {
  std::string pattern =
      (std::filesystem::temp_directory_path() / "torchwan-secret-XXXXXX").string();
  if (mkdtemp(pattern.data()) == nullptr) throw std::runtime_error("mkdtemp failed");
  path_ = pattern;
}

SecretDir::~SecretDir() {
  std::error_code ignored;
  std::filesystem::remove_all(path_, ignored);
}

std::string SecretDir::create(const std::string& name) const {
  const std::filesystem::path file = path_ / name;
  security::JobSecret::create_file(file);
  return file.string();
}

}  // namespace torchwan::testing
