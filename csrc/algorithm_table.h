// Every algorithm each collective has, when each is chosen, and an override that forces one (for
// tests and benchmarks): TORCHWAN_ALGORITHM / Options(algorithm="allreduce:ring,broadcast:chain").
// The choice decides message boundaries and tags, so every rank of a group must pick the same:
// the automatic rules read only inputs that are equal on every rank (sizes, the group's topology),
// and an override must be set the same on every rank.
#pragma once

#include <cstddef>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace torchwan::engine {

struct Topology;

enum class Collective { kAllreduce, kBroadcast, kReduce, kAllgather, kReduceScatter, kBarrier };

enum class Algorithm {
  kRecursiveDoubling,
  kRing,
  kDirectAllreduce,
  kTwoStep,
  kHierarchical,
  kSharedMemory,
  kHosts,
  kDirect,
  kBinomialTree,
  kChain,
  kDissemination,
};

struct AlgorithmInfo {
  Collective collective;
  Algorithm algorithm;
  std::string_view name;         // as written in an override, e.g. "ring"
  std::string_view when_chosen;  // the automatic rule, for people
};

// All of them, grouped by collective, each collective's automatic order first to last.
const std::vector<AlgorithmInfo>& algorithm_table();

std::string_view collective_name(Collective collective);
// As an override writes them ("reduce_scatter", "ring"); nullopt / "?" when not in the table.
std::optional<Collective> find_collective(std::string_view name);
std::string_view algorithm_name(Collective collective, Algorithm algorithm);

// What the automatic rules look at; equal on every rank of a group.
struct SelectionInputs {
  size_t bytes = 0;  // the buffer (allreduce, broadcast, reduce) or one rank's block
  int size = 1;
  const Topology* topology = nullptr;
  // Whether the group may share memory (it has a HostSharedMemory that did not fail to set up).
  bool shared_memory = false;
};

// Algorithms forced per collective; empty: every choice is automatic.
class AlgorithmOverrides {
 public:
  // Parses "collective:algorithm[,collective:algorithm...]" (empty: none). Throws
  // std::invalid_argument naming the bad part and listing what is accepted.
  static AlgorithmOverrides parse(const std::string& text);
  // TORCHWAN_ALGORITHM, when set.
  static AlgorithmOverrides from_env();

  bool empty() const { return forced_.empty(); }
  std::string describe() const;  // as parse() reads it
  const Algorithm* forced(Collective collective) const;

 private:
  std::map<Collective, Algorithm> forced_;
};

// The flat allreduce (direct, two steps, recursive doubling or the ring) of `bytes` on `size`
// ranks whose slowest round trip measured `max_rtt_ms` (0: not measured): the cost model's
// cheapest where measured, else the size thresholds. The automatic rule of a group without tiers,
// and of the step between hosts or regions inside the tiers.
Algorithm flat_allreduce_algorithm(size_t bytes, int size, double max_rtt_ms);

// The algorithm `collective` runs with: the override's when it names one (checked against the
// inputs: a hierarchical allreduce needs regions), else the automatic rule. Where round trips
// were measured (topology->max_rtt_ms > 0) the automatic rule is the cost model's cheapest flat
// algorithm (cost_model.h), after the host, region and shared-memory tiers' own rules; where not,
// the size thresholds of algorithm_tuning.h.
Algorithm choose_algorithm(Collective collective, const SelectionInputs& inputs,
                           const AlgorithmOverrides* overrides);

}  // namespace torchwan::engine
