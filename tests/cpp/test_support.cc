#include "test_support.h"

#include <gtest/gtest.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <exception>
#include <mutex>
#include <stdexcept>
#include <system_error>
#include <thread>

#include "transport/secure/job_secret.h"

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

transport::TransportError creation_error(const transport::TransportOptions& options,
                                         transport::Store& store, int rank, int size) {
  try {
    transport::Transport::create(options, store, rank, size);
  } catch (const transport::TransportError& error) {
    return error;
  }
  ADD_FAILURE() << "rank " << rank << " of " << size << " was created, expected a TransportError";
  return transport::TransportError(transport::ErrorKind::kInternal, "created");
}

TempDir::TempDir() {
  std::string pattern = (std::filesystem::temp_directory_path() / "torchwan-test-XXXXXX").string();
  if (mkdtemp(pattern.data()) == nullptr) throw std::runtime_error("mkdtemp failed");
  path_ = pattern;
}

TempDir::~TempDir() {
  std::error_code ignored;
  std::filesystem::remove_all(path_, ignored);
}

std::string SecretDir::create(const std::string& name) const {
  const std::filesystem::path file = path() / name;
  security::JobSecret::create_file(file);
  return file.string();
}

ChildProcess::ChildProcess(const std::function<int()>& body) {
  pid_ = ::fork();
  if (pid_ < 0) throw std::system_error(errno, std::generic_category(), "fork");
  if (pid_ == 0) {
    int status = 100;
    try {
      status = body();
    } catch (const std::exception& error) {
      std::fprintf(stderr, "child: %s\n", error.what());
    }
    // No destructors, no atexit handlers: they belong to the parent's objects.
    _exit(status);
  }
}

ChildProcess::~ChildProcess() { kill_now(); }

int ChildProcess::signal(int number) const { return ::kill(pid_, number); }

int ChildProcess::wait_for_exit(std::chrono::milliseconds timeout) {
  if (pid_ <= 0) return -1;
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  int status = 0;
  while (::waitpid(pid_, &status, WNOHANG) == 0) {
    if (std::chrono::steady_clock::now() > deadline) {
      kill_now();
      return -1;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  pid_ = -1;
  return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

void ChildProcess::kill_now() {
  if (pid_ <= 0) return;
  ::kill(pid_, SIGKILL);
  ::waitpid(pid_, nullptr, 0);
  pid_ = -1;
}

}  // namespace torchwan::testing
