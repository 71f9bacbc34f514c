// Helpers shared by the C++ tests: run N ranks as threads over a MemoryStore, deterministic data.
#pragma once

#include <sys/types.h>

#include <chrono>
#include <cstdint>
#include <filesystem>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "transport/errors.h"
#include "transport/store.h"
#include "transport/transport.h"

namespace torchwan::testing {

// The transport kinds every transport test runs against.
std::vector<std::string> transport_kinds();

// Options for loopback tests of `kind`, with TORCHWAN_* environment overrides ignored.
transport::TransportOptions loopback_options(const std::string& kind, int lanes = 2);

// Creates `size` connected transports (ranks as threads of this process).
std::vector<std::unique_ptr<transport::Transport>> connect_ranks(
    const transport::TransportOptions& options, int size);

// One rank's result of connect_each: its transport, or the error its creation threw.
struct ConnectOutcome {
  std::unique_ptr<transport::Transport> transport;
  std::optional<transport::TransportError> error;
};
// Creates a group whose rank r uses options_of(r), through `store`; a rank's TransportError is
// kept in its outcome instead of being thrown, so a test can look at every rank's.
std::vector<ConnectOutcome> connect_each(
    int size, const std::function<transport::TransportOptions(int rank)>& options_of,
    transport::Store& store);
// The transports of `outcomes`; throws the first error (in rank order) if any rank has one.
std::vector<std::unique_ptr<transport::Transport>> take_transports(
    std::vector<ConnectOutcome>& outcomes);

// The TransportError that creating rank `rank` of a `size`-rank group through `store` throws, for
// a test of a refused setup; fails the test, and returns a kInternal error, when the creation
// succeeds.
transport::TransportError creation_error(const transport::TransportOptions& options,
                                         transport::Store& store, int rank, int size);

// A private temporary directory, removed with everything in it at the end (FileStores shared with
// child processes, job secret files).
class TempDir {
 public:
  TempDir();
  ~TempDir();
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;
  const std::filesystem::path& path() const { return path_; }

 private:
  std::filesystem::path path_;
};

// A TempDir for job secret files.
class SecretDir : public TempDir {
 public:
  // Creates a new secret file called `name` in the directory; returns its path.
  std::string create(const std::string& name) const;
};

// Runs body(rank) on `size` threads and rethrows the first exception any of them raised.
void run_on_threads(int size, const std::function<void(int rank)>& body);

// Deterministic bytes that depend on (seed, index), so misplaced bytes are detected.
std::vector<uint8_t> pattern_bytes(size_t length, uint32_t seed);

// A forked child process, killed and reaped if the test ends early: a peer that can really be
// killed, frozen (SIGSTOP) and thawed. Construct it before this process creates any thread,
// transport or ZeroMQ context, which a fork would copy half-made.
class ChildProcess {
 public:
  // Runs `body` in the child, whose exit status is body's return value (100 when it throws; the
  // exception's message goes to stderr).
  explicit ChildProcess(const std::function<int()>& body);
  ~ChildProcess();
  ChildProcess(const ChildProcess&) = delete;
  ChildProcess& operator=(const ChildProcess&) = delete;

  // kill(2) on the child; 0 on success.
  int signal(int number) const;
  // The exit status once the child exited, or -1 if it died of a signal or did not exit within
  // `timeout` (it is then killed).
  int wait_for_exit(std::chrono::milliseconds timeout);
  // SIGKILL and reap, now; does nothing once the child was reaped.
  void kill_now();

 private:
  pid_t pid_ = -1;
};

}  // namespace torchwan::testing
