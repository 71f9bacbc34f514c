// Memory that the ranks of one group share when they all run on one host: every rank owns a
// segment of two slots, and maps every other rank's segment read-only. The shared-memory
// allreduce (shared_memory_allreduce.cc) moves data through it with one memory copy each way
// instead of the two copies and the protocol work of a socket.
//
// The segments are created on first use, by a collective step inside the first call that needs
// them: each rank creates a POSIX shared-memory object (reserving its pages, so a full /dev/shm is
// an error here, not a SIGBUS later), sends its name to every peer, maps every peer's, and tells
// every peer whether that worked. The objects are unlinked as soon as everyone has answered, so
// nothing stays behind in /dev/shm once the processes exit. If any rank could not create or map a
// segment (a container with its own /dev/shm, a /dev/shm too small), every rank learns it in the
// same step and the group's allreduces go over the transport from then on.
//
// Only the transport carries synchronisation (zero-length messages), so a lost or aborted peer
// fails a shared-memory call exactly as it fails any other collective.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

namespace torchwan::engine {

class Exchange;

class HostSharedMemory {
 public:
  // A slot holds one chunk of an allreduce; two let a rank fill the next chunk while its peers
  // still read the previous one. 2 x 4 MiB per rank stays well inside a container's default
  // 64 MiB /dev/shm for up to 8 ranks per host.
  static constexpr size_t kSlotBytes = size_t{4} << 20;
  static constexpr int kSlots = 2;
  static constexpr size_t kSegmentBytes = kSlotBytes * kSlots;

  HostSharedMemory();
  ~HostSharedMemory();
  HostSharedMemory(const HostSharedMemory&) = delete;
  HostSharedMemory& operator=(const HostSharedMemory&) = delete;

  // Whether the segments can carry this call: sets them up on the first call (a collective step
  // over `ex`, which every rank of the group takes at the same point of the same call), and
  // returns the same answer on every rank. Throws what the exchange throws (a lost peer, the
  // deadline).
  bool ready(Exchange& ex);
  // True once a set-up failed on some rank: no later call tries again.
  bool unavailable() const { return state_ == State::kUnavailable; }

  // Slot `slot` of `rank`'s segment (writable only for this rank's own).
  uint8_t* slot(int rank, int slot) const;

 private:
  class Mapping;
  enum class State { kUnset, kReady, kUnavailable };

  // Creates and maps this rank's segment; returns its name, or an empty string (with `why` set).
  std::string create_own(int rank, std::string& why);
  // Maps `peer`'s segment `name`; false (with `why` set) when it cannot.
  bool map_peer(int peer, const std::string& name, std::string& why);

  State state_ = State::kUnset;
  std::vector<Mapping> segments_;  // by rank
};

}  // namespace torchwan::engine
