// One transport device per process: the connections to every peer process, with their lanes,
// progress threads and liveness, shared by every process group of the job. A group is a view
// over it (transport/group_view.h) with its own ranks, a subset of the device's in any order, and
// its own channel: a number carried in bits 32-47 of every tag, so that groups over the same peers
// never match each other's messages. Opening a view opens no connection and starts no thread.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "transport/transport.h"

namespace torchwan::transport {

// Tags a group may use: the channel takes the 16 bits above them.
inline constexpr Tag kMaxGroupTag = Tag{1} << 32;
// Channels 1..kMaxChannel name groups that share a device; channel 0 is the group that created it.
inline constexpr uint32_t kMaxChannel = 0xffff;

class Device : public std::enable_shared_from_this<Device> {
 public:
  // Takes the process-wide transport (Transport::create's); the device's ranks are its ranks.
  static std::shared_ptr<Device> create(std::unique_ptr<Transport> links);
  ~Device();
  Device(const Device&) = delete;
  Device& operator=(const Device&) = delete;

  int rank() const { return links_->rank(); }
  int size() const { return links_->size(); }
  const TransportOptions& options() const { return links_->options(); }
  // What this process exchanged with each peer process, every group together.
  std::vector<PeerTraffic> traffic() const { return links_->traffic(); }
  // How this process reached each peer process (empty: all directly).
  std::vector<LinkRung> link_rungs() const { return links_->links(); }

  // A transport whose rank i is device rank members[i] and whose messages travel in `channel`.
  // Throws TransportError(kInvalidArgument) unless the members are distinct device ranks that
  // include this process and the channel is at most kMaxChannel. Channel 0 over every rank in
  // order is the device itself: calls pass straight through and abort() aborts the device.
  std::unique_ptr<Transport> open_view(std::vector<int> members, uint32_t channel);

  // --- for views ---
  Transport& links() { return *links_; }
  // Registers `handler` to hear of lost peers (device ranks); returns what unregisters it.
  uint64_t add_peer_failure_handler(Transport::PeerFailureHandler handler);
  void remove_peer_failure_handler(uint64_t id);

 private:
  // The views' failure handlers. The links' progress thread reports to this, never to the
  // Device: were it to hold the Device, it could end up releasing the last reference and tearing
  // the links down from their own thread.
  struct FailureHandlers {
    std::mutex mutex;
    uint64_t next_id = 0;
    std::map<uint64_t, Transport::PeerFailureHandler> handlers;
    void peer_lost(int peer, const std::string& why);
  };

  explicit Device(std::unique_ptr<Transport> links);

  std::unique_ptr<Transport> links_;
  std::shared_ptr<FailureHandlers> failure_handlers_ = std::make_shared<FailureHandlers>();
};

}  // namespace torchwan::transport
