#include "csrc/algorithms.h"

namespace torchwan::engine {

void dissemination_barrier(Exchange& ex) {
  const int size = ex.size();
  const int rank = ex.rank();
  // Zero-length messages still need a valid address for some transports.
  uint8_t token = 0;
  uint32_t round = 0;
  for (int distance = 1; distance < size; distance *= 2, ++round) {
    ex.send((rank + distance) % size, round, &token, 0);
    // Receiving round k from rank-2^k proves that it (and, transitively, 2^(k+1)-1 ranks before
    // it) has entered; the sends need not complete before the next round.
    ex.wait(ex.recv((rank - distance + size) % size, round, &token, 0));
  }
  ex.wait_all();
}

}  // namespace torchwan::engine
