// Helpers shared by the C++ tests: run N ranks as threads over a MemoryStore, deterministic data.
#pragma once

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

// A private temporary directory for job secret files, removed with everything in it at the end.
class SecretDir {
 public:
  SecretDir();
  ~SecretDir();
  SecretDir(const SecretDir&) = delete;
  SecretDir& operator=(const SecretDir&) = delete;
  // Creates a new secret file called `name` in the directory; returns its path.
  std::string create(const std::string& name) const;
  const std::filesystem::path& path() const { return path_; }

 private:
  std::filesystem::path path_;
};

// Runs body(rank) on `size` threads and rethrows the first exception any of them raised.
void run_on_threads(int size, const std::function<void(int rank)>& body);

// Deterministic bytes that depend on (seed, index), so misplaced bytes are detected.
std::vector<uint8_t> pattern_bytes(size_t length, uint32_t seed);

}  // namespace torchwan::testing
