// Helpers shared by the C++ tests: run N ranks as threads over a MemoryStore, deterministic data.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "transport/transport.h"

namespace torchwan::testing {

// The transport kinds every transport test runs against.
std::vector<std::string> transport_kinds();

// Options for loopback tests of `kind`, with TORCHWAN_* environment overrides ignored.
transport::TransportOptions loopback_options(const std::string& kind, int lanes = 2);

// Creates `size` connected transports (ranks as threads of this process).
std::vector<std::unique_ptr<transport::Transport>> connect_ranks(
    const transport::TransportOptions& options, int size);

// Runs body(rank) on `size` threads and rethrows the first exception any of them raised.
void run_on_threads(int size, const std::function<void(int rank)>& body);

// Deterministic bytes that depend on (seed, index), so misplaced bytes are detected.
std::vector<uint8_t> pattern_bytes(size_t length, uint32_t seed);

}  // namespace torchwan::testing
