// The regions of a process group (which ranks share a data centre), decided once when the group is
// created so that allreduce can keep most of its traffic off the slow links between regions.
// Torch-free (it logs through spdlog, whose fmt clashes with torch's), so it also builds into the
// C++ API without pulling torch into the engine.
#pragma once

#include <chrono>
#include <string>
#include <vector>

#include "csrc/topology.h"

namespace torchwan::transport {
class Store;
class Transport;
}  // namespace torchwan::transport

namespace torchwan::engine {

struct TopologyOptions {
  // This rank's region label; ranks with equal labels share a region. Set on every rank or on
  // none.                                               TORCHWAN_REGION
  std::string region;
  // "auto": the labels when set, else (more than two ranks) regions clustered from round-trip
  // times measured when the group is created; "regions": the labels, required on every rank;
  // "flat": one region, no hierarchy. Set as "topology".   TORCHWAN_TOPOLOGY
  std::string mode = "auto";
  // Which machine this rank runs on; empty: this_host_id(). Set as "host_id".  TORCHWAN_HOST_ID
  std::string host_id;
  // What carries the host tier: "auto", "gloo" (shared memory), "none" (every rank a host of its
  // own) or "nccl" (the c10d backend's NCCL group per host, for CUDA tensors; the engine treats
  // it as "gloo"). Set as "local_backend".                 TORCHWAN_LOCAL_BACKEND
  std::string local_backend = "auto";

  // Sets the field called `name` ("region" or "topology"). Throws std::invalid_argument naming
  // the field when the name is unknown or the value is not accepted.
  void set(const std::string& name, const std::string& value);
  static const std::vector<std::string>& field_names();
  // The defaults with every TORCHWAN_REGION / TORCHWAN_TOPOLOGY that is set applied on top.
  static TopologyOptions from_env();
};

// The machine this process runs on: hostname, kernel boot id and network namespace, so that
// processes in separate network namespaces of one kernel (containers, the WAN lab's emulated
// hosts) count as separate hosts, as their traffic takes separate paths.
std::string this_host_id();

struct GroupTopology {
  engine::Topology topology;
  // How it was decided: "flat", "labels" or "rtt".
  std::string source;
  // size x size round-trip times in ms (row i: what rank i measured), when source is "rtt".
  std::vector<double> rtt_ms;
};

// Every rank of the group calls this once, right after the transport connected and before any
// collective: it exchanges each rank's options through `store` (and, when clustering, measures
// round-trip times over `transport`, with message sequence 0, which no collective uses), so every
// rank returns the identical result. Throws std::invalid_argument with the same message on every
// rank when the ranks' settings conflict (labels on only some ranks, different modes), and a
// transport error when a peer does not answer within `timeout`.
GroupTopology discover_group_topology(transport::Store& store, transport::Transport& transport,
                                      const TopologyOptions& options,
                                      std::chrono::milliseconds timeout);

}  // namespace torchwan::engine
