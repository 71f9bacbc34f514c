// Topology inputs (csrc/topology.h): the region labels and RTT matrix every rank contributes to
// the exchange, from which choose_topology derives the hierarchy. Hostile values (NaN, negative,
// infinite, empty labels, a label on only some ranks) must end in std::invalid_argument.
#include <fuzzer/FuzzedDataProvider.h>

#include <cstddef>
#include <cstdint>
#include <stdexcept>
#include <string>
#include <vector>

#include "csrc/topology.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace torchwan::engine;
  FuzzedDataProvider input(data, size);
  const int ranks = input.ConsumeIntegralInRange<int>(0, 24);
  std::vector<std::string> labels;
  if (input.ConsumeBool()) {
    for (int i = 0; i < ranks; ++i) labels.push_back(input.ConsumeRandomLengthString(8));
  }
  std::vector<double> rtt;
  const size_t cells = input.ConsumeBool() ? static_cast<size_t>(ranks) * ranks
                                           : input.ConsumeIntegralInRange<size_t>(0, 600);
  for (size_t i = 0; i < cells && input.remaining_bytes() > 0; ++i) {
    rtt.push_back(input.ConsumeFloatingPoint<double>());
  }
  RttClustering options;
  options.ratio = input.ConsumeFloatingPoint<double>();
  options.floor_ms = input.ConsumeFloatingPoint<double>();
  try {
    const Topology topology = choose_topology(labels, rtt, options);
    if (!topology.consistent()) __builtin_trap();
  } catch (const std::invalid_argument&) {
  }
  return 0;
}
