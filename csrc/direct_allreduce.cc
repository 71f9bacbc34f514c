#include <cstring>

#include "csrc/algorithms.h"
#include "csrc/reduce.h"

namespace torchwan::engine {

void direct_allreduce(Exchange& ex, uint8_t* data, size_t count, DataType dtype, ReduceOp op) {
  const int size = ex.size();
  const int rank = ex.rank();
  const size_t bytes = count * element_size(dtype);
  // Slot r holds rank r's buffer; our own goes in too, so the fold below is the same everywhere.
  uint8_t* slots = ex.scratch(bytes * static_cast<size_t>(size));
  std::memcpy(slots + static_cast<size_t>(rank) * bytes, data, bytes);
  for (int peer = 0; peer < size; ++peer) {
    if (peer == rank) continue;
    ex.send(peer, 0, data, bytes);
    ex.recv(peer, 0, slots + static_cast<size_t>(peer) * bytes, bytes);
  }
  ex.wait_all();  // `data` is sent before it is overwritten
  std::memcpy(data, slots, bytes);
  for (int r = 1; r < size; ++r) {
    reduce_into(dtype, op, data, slots + static_cast<size_t>(r) * bytes, count);
  }
}

}  // namespace torchwan::engine
