// The flat allreduces behind one call, for the group-wide allreduce (collectives.cc) and for the
// step between hosts or regions inside the tiers (hierarchical_allreduce.cc).
#include <stdexcept>

#include "csrc/algorithms.h"
#include "csrc/ring.h"

namespace torchwan::engine {

void flat_allreduce(Exchange& ex, Algorithm algorithm, uint8_t* data, size_t count, DataType dtype,
                    ReduceOp op) {
  switch (algorithm) {
    case Algorithm::kDirectAllreduce:
      direct_allreduce(ex, data, count, dtype, op);
      return;
    case Algorithm::kTwoStep:
      two_step_allreduce(ex, data, count, dtype, op);
      return;
    case Algorithm::kRecursiveDoubling:
      recursive_doubling_allreduce(ex, data, count, dtype, op);
      return;
    case Algorithm::kRing:
      ring_allreduce(ex, data, balanced_ring_layout(count, element_size(dtype), ex.size()), dtype,
                     op);
      return;
    default:
      throw std::logic_error(
          "flat_allreduce: " + std::string(algorithm_name(Collective::kAllreduce, algorithm)) +
          " is not a flat allreduce");
  }
}

}  // namespace torchwan::engine
