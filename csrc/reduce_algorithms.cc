// Reduce to one root: a binomial tree for latency, a pipelined chain for bandwidth.
#include <algorithm>
#include <cstring>
#include <vector>

#include "csrc/algorithm_tuning.h"
#include "csrc/algorithms.h"
#include "csrc/reduce.h"

namespace torchwan::engine {
namespace {

int rank_at(int position, int root, int size) { return (position + root) % size; }

}  // namespace

void binomial_tree_reduce(Exchange& ex, uint8_t* data, size_t count, DataType dtype, ReduceOp op,
                          int root) {
  const int size = ex.size();
  const int position = (ex.rank() - root + size) % size;
  const size_t bytes = count * element_size(dtype);

  // Children are position + 2^k for every 2^k below the lowest set bit of position (all of them
  // on the root); the parent is position with that bit cleared.
  int parent_mask = 1;
  while (parent_mask < size && (position & parent_mask) == 0) parent_mask <<= 1;
  struct Child {
    Exchange::Handle request;
    uint8_t* partial;
  };
  std::vector<Child> children;
  for (int mask = 1; mask < parent_mask && position + mask < size; mask <<= 1) {
    uint8_t* partial = ex.scratch(bytes);
    children.push_back({ex.recv(rank_at(position + mask, root, size), 0, partial, bytes), partial});
  }

  // The root accumulates in its own buffer; other ranks must leave theirs unchanged, so a rank
  // with children works on a copy and a leaf sends its data as it is.
  uint8_t* accumulator = data;
  if (position != 0 && !children.empty()) {
    accumulator = ex.scratch(bytes);
    std::memcpy(accumulator, data, bytes);
  }
  // Nearest child first: its partial covers the positions right above ours, so folding in
  // order keeps (lower op higher) without waiting for the farther, slower subtrees first.
  for (const Child& child : children) {
    ex.wait(child.request);
    reduce_into(dtype, op, accumulator, child.partial, count);
  }
  if (position != 0) {
    ex.wait(ex.send(rank_at(position - parent_mask, root, size), 0, accumulator, bytes));
  }
}

void chain_reduce(Exchange& ex, uint8_t* data, size_t count, DataType dtype, ReduceOp op,
                  int root) {
  const int size = ex.size();
  const int position = (ex.rank() - root + size) % size;
  const size_t element_bytes = element_size(dtype);
  const size_t bytes = count * element_bytes;
  const bool has_upstream = position + 1 < size;  // the far end starts the chain
  const bool has_downstream = position > 0;       // the root ends it
  const int upstream = rank_at(position + 1, root, size);
  const int downstream = rank_at(position - 1 + size, root, size);
  // As for the chain broadcast: chunks of about a P-th of the message keep the P-1 start-up
  // hops near a quarter of the message time.
  const size_t chunk_bytes =
      std::min(pipeline_chunk_bytes(bytes / static_cast<size_t>(size), element_bytes), bytes);
  const size_t chunks = (bytes + chunk_bytes - 1) / chunk_bytes;
  const size_t window = std::min(kMaxChunksInFlight, chunks);
  auto chunk_length = [&](size_t chunk) {
    return std::min(chunk_bytes, bytes - chunk * chunk_bytes);
  };
  // Received partials land in a ring of `window` staging slots; a middle rank reduces its own
  // chunk into the slot and forwards the slot, so its `data` is only read.
  uint8_t* staging = has_upstream ? ex.scratch(window * chunk_bytes) : nullptr;
  auto slot = [&](size_t chunk) { return staging + (chunk % window) * chunk_bytes; };

  std::vector<Exchange::Handle> sends(chunks);
  std::vector<Exchange::Handle> receives(chunks);
  size_t next_receive_post = 0;
  size_t processed = has_upstream ? 0 : chunks;  // chunks below this are final here
  size_t next_send = has_downstream ? 0 : chunks;
  size_t sends_retired = next_send;
  // Chunks are posted in increasing order on both ends of each link, so the chunk number modulo
  // 2^16 is a safe step.
  while (processed < chunks || sends_retired < chunks) {
    const uint64_t seen = ex.completions();
    bool progressed = false;
    while (sends_retired < next_send && ex.finished(sends[sends_retired])) {
      ++sends_retired;
      progressed = true;
    }
    while (processed < next_receive_post && ex.finished(receives[processed])) {
      const size_t offset = processed * chunk_bytes;
      const size_t elements = chunk_length(processed) / element_bytes;
      if (has_downstream) {
        reduce_into(dtype, op, slot(processed), data + offset, elements);
      } else {
        reduce_into(dtype, op, data + offset, slot(processed), elements);
      }
      receives[processed].reset();
      ++processed;
      progressed = true;
    }
    while (next_send < chunks && next_send < processed &&
           next_send - sends_retired < kMaxChunksInFlight) {
      uint8_t* source = has_upstream ? slot(next_send) : data + next_send * chunk_bytes;
      sends[next_send] =
          ex.send(downstream, static_cast<uint32_t>(next_send), source, chunk_length(next_send));
      ++next_send;
      progressed = true;
    }
    // A slot is free once the chunk that used it before is reduced and, on a middle rank, sent.
    while (has_upstream && next_receive_post < chunks && next_receive_post < processed + window &&
           (!has_downstream || next_receive_post < sends_retired + window)) {
      receives[next_receive_post] =
          ex.recv(upstream, static_cast<uint32_t>(next_receive_post), slot(next_receive_post),
                  chunk_length(next_receive_post));
      ++next_receive_post;
      progressed = true;
    }
    if (!progressed) ex.wait_for_completion(seen);
  }
}

}  // namespace torchwan::engine
