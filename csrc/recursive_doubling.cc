#include <cstring>

#include "csrc/algorithms.h"
#include "csrc/reduce.h"

namespace torchwan::engine {

void recursive_doubling_allreduce(Exchange& ex, uint8_t* data, size_t count, DataType dtype,
                                  ReduceOp op) {
  const int size = ex.size();
  const int rank = ex.rank();
  const size_t bytes = count * element_size(dtype);
  uint8_t* incoming = ex.scratch(bytes);

  // Combines our partial result with the one just received, always as lower op higher.
  auto combine = [&](bool ours_is_lower) {
    if (ours_is_lower) {
      reduce_into(dtype, op, data, incoming, count);
    } else {
      reduce_into(dtype, op, incoming, data, count);
      std::memcpy(data, incoming, bytes);
    }
  };

  int power_of_two = 1;
  int rounds = 0;
  while (power_of_two * 2 <= size) {
    power_of_two *= 2;
    ++rounds;
  }
  const int extra = size - power_of_two;  // ranks 0..2*extra-1 pair up before the exchange rounds
  const uint32_t kFoldInStep = 0;
  const uint32_t kFoldOutStep = static_cast<uint32_t>(rounds) + 1;

  int virtual_rank;
  if (rank < 2 * extra) {
    if (rank % 2 == 0) {
      // Hands its data to the odd neighbour and gets the final result back from it.
      auto sent = ex.send(rank + 1, kFoldInStep, data, bytes);
      auto result = ex.recv(rank + 1, kFoldOutStep, data, bytes);
      ex.wait(sent);
      ex.wait(result);
      return;
    }
    ex.wait(ex.recv(rank - 1, kFoldInStep, incoming, bytes));
    combine(/*ours_is_lower=*/false);
    virtual_rank = rank / 2;
  } else {
    virtual_rank = rank - extra;
  }

  for (int mask = 1, round = 0; mask < power_of_two; mask <<= 1, ++round) {
    const int partner_virtual = virtual_rank ^ mask;
    const int partner = partner_virtual < extra ? partner_virtual * 2 + 1 : partner_virtual + extra;
    const auto step = static_cast<uint32_t>(round) + 1;
    auto sent = ex.send(partner, step, data, bytes);
    auto received = ex.recv(partner, step, incoming, bytes);
    ex.wait(received);
    ex.wait(sent);  // `data` is about to change
    combine(virtual_rank < partner_virtual);
  }

  if (rank < 2 * extra) ex.wait(ex.send(rank - 1, kFoldOutStep, data, bytes));
}

}  // namespace torchwan::engine
