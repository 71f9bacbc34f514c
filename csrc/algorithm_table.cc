#include "csrc/algorithm_table.h"

#include <fmt/format.h>

#include <optional>
#include <stdexcept>

#include "base/option_registry.h"
#include "csrc/algorithm_tuning.h"
#include "csrc/cost_model.h"
#include "csrc/hierarchical.h"
#include "csrc/topology.h"

namespace torchwan::engine {

const std::vector<AlgorithmInfo>& algorithm_table() {
  static const std::vector<AlgorithmInfo> table = {
      {Collective::kAllreduce, Algorithm::kHosts, "hosts",
       "the ranks run on several hosts of equal size, more than one rank each, the buffer is at "
       "least 64 KiB, and the group has no regions other than its hosts: reduce-scatter inside "
       "each host through shared memory, allreduce each shard between the hosts (every local "
       "rank carrying its own), allgather inside"},
      {Collective::kAllreduce, Algorithm::kHierarchical, "hierarchical",
       "the group has several regions (and fewer regions than ranks): reduce inside regions, "
       "cross between them with as little data as possible"},
      {Collective::kAllreduce, Algorithm::kSharedMemory, "shared_memory",
       "every rank runs on one host and the buffer is at least 64 KiB: through shared memory, "
       "each rank reducing 1/P of every chunk"},
      {Collective::kAllreduce, Algorithm::kDirectAllreduce, "direct",
       "where round trips were measured, whenever the cost model predicts it fastest (its "
       "scratch, P x the buffer, stays within 64 MiB); otherwise while the P-1 copies each rank "
       "sends stay below 64 KiB: every rank sends its buffer to every other and reduces them all "
       "in rank order, one latency"},
      {Collective::kAllreduce, Algorithm::kTwoStep, "two_step",
       "where round trips were measured, whenever the cost model predicts it fastest (the "
       "(P-1)/P of the buffer each rank sends at once stays within 4 MiB): every rank sends each "
       "other rank the part of its buffer that rank reduces, folds the P parts of its own in rank "
       "order, then sends the result to every rank; two latencies, with the ring's bytes"},
      {Collective::kAllreduce, Algorithm::kRecursiveDoubling, "recursive_doubling",
       "measured round trips: when predicted fastest; otherwise below 64 KiB: log2 P latencies"},
      {Collective::kAllreduce, Algorithm::kRing, "ring",
       "measured round trips: when predicted fastest; otherwise: pipelined ring"},
      {Collective::kBroadcast, Algorithm::kDirect, "direct",
       "measured round trips: when predicted fastest; otherwise the root's P-1 copies stay "
       "below 64 KiB: one latency"},
      {Collective::kBroadcast, Algorithm::kBinomialTree, "binomial_tree",
       "measured round trips: when predicted fastest; otherwise below 4 MiB"},
      {Collective::kBroadcast, Algorithm::kChain, "chain",
       "measured round trips: when predicted fastest; otherwise: pipelined chain, every link "
       "carries the data once"},
      {Collective::kReduce, Algorithm::kBinomialTree, "binomial_tree",
       "measured round trips: when predicted fastest; otherwise below 4 MiB"},
      {Collective::kReduce, Algorithm::kChain, "chain",
       "measured round trips: when predicted fastest; otherwise: pipelined chain"},
      {Collective::kAllgather, Algorithm::kDirect, "direct",
       "measured round trips: when predicted fastest; otherwise the P-1 copies of its block a "
       "rank sends stay below 64 KiB: one latency"},
      {Collective::kAllgather, Algorithm::kRing, "ring",
       "measured round trips: when predicted fastest; otherwise: pipelined ring"},
      {Collective::kReduceScatter, Algorithm::kDirect, "direct",
       "measured round trips: when predicted fastest; otherwise the P-1 blocks a rank sends "
       "stay below 64 KiB: one latency, each rank folds its block in rank order"},
      {Collective::kReduceScatter, Algorithm::kRing, "ring",
       "measured round trips: when predicted fastest; otherwise: pipelined ring"},
      {Collective::kBarrier, Algorithm::kDirect, "direct",
       "up to 64 ranks (and, with measured round trips, when predicted fastest): one "
       "zero-length message each way between every pair, one latency"},
      {Collective::kBarrier, Algorithm::kDissemination, "dissemination",
       "otherwise: log2 P rounds"},
  };
  return table;
}

std::string_view collective_name(Collective collective) {
  switch (collective) {
    case Collective::kAllreduce:
      return "allreduce";
    case Collective::kBroadcast:
      return "broadcast";
    case Collective::kReduce:
      return "reduce";
    case Collective::kAllgather:
      return "allgather";
    case Collective::kReduceScatter:
      return "reduce_scatter";
    case Collective::kBarrier:
      return "barrier";
  }
  return "?";
}

std::string_view algorithm_name(Collective collective, Algorithm algorithm) {
  for (const AlgorithmInfo& info : algorithm_table()) {
    if (info.collective == collective && info.algorithm == algorithm) return info.name;
  }
  return "?";
}

std::optional<Collective> find_collective(std::string_view name) {
  for (const AlgorithmInfo& info : algorithm_table()) {
    if (collective_name(info.collective) == name) return info.collective;
  }
  return std::nullopt;
}

namespace {

std::string accepted() {
  std::string text;
  for (const AlgorithmInfo& info : algorithm_table()) {
    if (!text.empty()) text += ", ";
    text += fmt::format("{}:{}", collective_name(info.collective), info.name);
  }
  return text;
}

bool has_regions(const SelectionInputs& inputs) {
  return inputs.topology != nullptr && inputs.topology->region_count() > 1 &&
         inputs.topology->region_count() < inputs.size;
}

bool on_one_host(const SelectionInputs& inputs) {
  return inputs.shared_memory && inputs.topology != nullptr && inputs.topology->one_host();
}

bool has_hosts(const SelectionInputs& inputs) {
  return inputs.topology != nullptr && has_host_tier(*inputs.topology);
}

bool regions_are_hosts(const SelectionInputs& inputs) {
  // Both numberings are canonical (by lowest rank), so equal groupings compare equal.
  return inputs.topology->region_of == topology_from_groups(inputs.topology->host_of).region_of;
}

double max_rtt_ms(const SelectionInputs& inputs) {
  return inputs.topology != nullptr ? inputs.topology->max_rtt_ms : 0.0;
}

// Where round trips were measured, the cost model picks among the flat algorithms; the tiers it
// does not describe (hosts, regions, shared memory) keep their own rules, checked first.
bool use_cost_model(const SelectionInputs& inputs) { return max_rtt_ms(inputs) > 0; }

Algorithm automatic(Collective collective, const SelectionInputs& inputs) {
  if (collective != Collective::kAllreduce && use_cost_model(inputs)) {
    return cheapest_algorithm(collective, inputs.bytes, inputs.size,
                              link_model(max_rtt_ms(inputs)));
  }
  switch (collective) {
    case Collective::kAllreduce:
      // Regions that are exactly the hosts (the round trips between a host's ranks set them
      // apart) are served better by the host tier, which shares memory inside each.
      if (has_hosts(inputs) && inputs.bytes >= kStripedAllreduceMinBytes &&
          (!has_regions(inputs) || regions_are_hosts(inputs) ||
           hosts_compose_with_regions(*inputs.topology))) {
        return Algorithm::kHosts;
      }
      if (has_regions(inputs) && inputs.bytes >= kHierarchicalAllreduceMinBytes) {
        return Algorithm::kHierarchical;
      }
      if (on_one_host(inputs) && inputs.bytes >= kSharedMemoryAllreduceMinBytes) {
        return Algorithm::kSharedMemory;
      }
      return flat_allreduce_algorithm(inputs.bytes, inputs.size, max_rtt_ms(inputs));
    case Collective::kBroadcast:
      if (inputs.bytes * static_cast<size_t>(inputs.size - 1) <
          latency_bound_max_bytes(max_rtt_ms(inputs))) {
        return Algorithm::kDirect;
      }
      return inputs.bytes < kTreeBroadcastMaxBytes ? Algorithm::kBinomialTree : Algorithm::kChain;
    case Collective::kReduce:
      return inputs.bytes < kTreeReduceMaxBytes ? Algorithm::kBinomialTree : Algorithm::kChain;
    case Collective::kAllgather:
    case Collective::kReduceScatter:
      return inputs.bytes * static_cast<size_t>(inputs.size - 1) <
                     latency_bound_max_bytes(max_rtt_ms(inputs))
                 ? Algorithm::kDirect
                 : Algorithm::kRing;
    case Collective::kBarrier:
      return inputs.size <= kDirectBarrierMaxRanks ? Algorithm::kDirect : Algorithm::kDissemination;
  }
  return Algorithm::kRing;
}

}  // namespace

Algorithm flat_allreduce_algorithm(size_t bytes, int size, double max_rtt_ms) {
  if (max_rtt_ms > 0) {
    return cheapest_algorithm(Collective::kAllreduce, bytes, size, link_model(max_rtt_ms));
  }
  if (bytes * static_cast<size_t>(size - 1) < latency_bound_max_bytes(max_rtt_ms)) {
    return Algorithm::kDirectAllreduce;
  }
  return bytes < latency_bound_max_bytes(max_rtt_ms) ? Algorithm::kRecursiveDoubling
                                                     : Algorithm::kRing;
}

AlgorithmOverrides AlgorithmOverrides::parse(const std::string& text) {
  AlgorithmOverrides overrides;
  size_t start = 0;
  while (start < text.size()) {
    size_t end = text.find(',', start);
    if (end == std::string::npos) end = text.size();
    const std::string part = text.substr(start, end - start);
    start = end + 1;
    if (part.empty()) continue;
    const size_t colon = part.find(':');
    const std::optional<Collective> collective =
        colon == std::string::npos ? std::nullopt : find_collective(part.substr(0, colon));
    const std::string name = colon == std::string::npos ? "" : part.substr(colon + 1);
    bool found = false;
    for (const AlgorithmInfo& info : algorithm_table()) {
      if (collective && info.collective == *collective && info.name == name) {
        if (overrides.forced_.count(*collective) != 0) {
          throw std::invalid_argument(
              fmt::format("algorithm: '{}' names {} twice", text, collective_name(*collective)));
        }
        overrides.forced_[*collective] = info.algorithm;
        found = true;
      }
    }
    if (!found) {
      throw std::invalid_argument(fmt::format(
          "algorithm: '{}' is not collective:algorithm; accepted: {}", part, accepted()));
    }
  }
  return overrides;
}

AlgorithmOverrides AlgorithmOverrides::from_env() {
  return base::parse_env_option("algorithm", AlgorithmOverrides{}, &AlgorithmOverrides::parse);
}

std::string AlgorithmOverrides::describe() const {
  std::string text;
  for (const auto& [collective, algorithm] : forced_) {
    if (!text.empty()) text += ",";
    text +=
        fmt::format("{}:{}", collective_name(collective), algorithm_name(collective, algorithm));
  }
  return text;
}

const Algorithm* AlgorithmOverrides::forced(Collective collective) const {
  const auto it = forced_.find(collective);
  return it == forced_.end() ? nullptr : &it->second;
}

Algorithm choose_algorithm(Collective collective, const SelectionInputs& inputs,
                           const AlgorithmOverrides* overrides) {
  const Algorithm* forced = overrides != nullptr ? overrides->forced(collective) : nullptr;
  if (forced == nullptr) return automatic(collective, inputs);
  if (*forced == Algorithm::kHierarchical && !has_regions(inputs)) {
    throw std::invalid_argument(
        "algorithm allreduce:hierarchical needs a group of several regions (set region labels "
        "or topology=regions); this group has one region or one rank per region");
  }
  if (*forced == Algorithm::kSharedMemory && !on_one_host(inputs)) {
    throw std::invalid_argument(
        "algorithm allreduce:shared_memory needs a group whose ranks all run on one host (see "
        "host_id) and can share memory");
  }
  if (*forced == Algorithm::kHosts && !has_hosts(inputs)) {
    throw std::invalid_argument(
        "algorithm allreduce:hosts needs a group on several hosts of equal size with more than "
        "one rank each (see host_id)");
  }
  return *forced;
}

}  // namespace torchwan::engine
