#include <algorithm>
#include <vector>

#include "csrc/algorithm_tuning.h"
#include "csrc/algorithms.h"

namespace torchwan::engine {
namespace {

// Rank at `position` along a chain or tree that starts at `root`.
int rank_at(int position, int root, int size) { return (position + root) % size; }

}  // namespace

void direct_broadcast(Exchange& ex, uint8_t* data, size_t bytes, int root) {
  if (ex.rank() != root) {
    ex.wait(ex.recv(root, 0, data, bytes));
    return;
  }
  for (int peer = 0; peer < ex.size(); ++peer) {
    if (peer != root) ex.send(peer, 0, data, bytes);
  }
  ex.wait_all();
}

void binomial_tree_broadcast(Exchange& ex, uint8_t* data, size_t bytes, int root) {
  const int size = ex.size();
  const int position = (ex.rank() - root + size) % size;
  // The parent is `position` with its lowest set bit cleared; the children add each lower bit.
  int mask = 1;
  while (mask < size) {
    if (position & mask) {
      ex.wait(ex.recv(rank_at(position - mask, root, size), 0, data, bytes));
      break;
    }
    mask <<= 1;
  }
  for (mask >>= 1; mask > 0; mask >>= 1) {
    if (position + mask < size) ex.send(rank_at(position + mask, root, size), 0, data, bytes);
  }
  ex.wait_all();
}

void chain_broadcast(Exchange& ex, uint8_t* data, size_t bytes, int root) {
  const int size = ex.size();
  const int position = (ex.rank() - root + size) % size;
  const bool has_previous = position > 0;
  const bool has_next = position + 1 < size;
  const int previous = rank_at(position - 1 + size, root, size);
  const int next = rank_at(position + 1, root, size);
  // The chain takes (P - 1 + chunks - 1) chunk times: cut the message as if it were P segments
  // so the P-1 start-up hops cost about a quarter of the message time.
  const size_t chunk_bytes = pipeline_chunk_bytes(bytes / static_cast<size_t>(size), 1);
  const size_t chunks = (bytes + chunk_bytes - 1) / chunk_bytes;
  auto chunk_length = [&](size_t chunk) {
    return std::min(chunk_bytes, bytes - chunk * chunk_bytes);
  };

  std::vector<Exchange::Handle> sends(chunks);
  std::vector<Exchange::Handle> receives(chunks);
  // Chunks are posted in increasing order on both ends, so the chunk number modulo 2^16 is a safe
  // tag. Receives land straight in `data`; a chunk is forwarded once it has arrived.
  size_t next_receive_post = 0;
  size_t received = has_previous ? 0 : chunks;  // every chunk below this is in `data`
  size_t next_send = has_next ? 0 : chunks;
  size_t sends_retired = next_send;
  while (received < chunks || sends_retired < chunks) {
    const uint64_t seen = ex.completions();
    bool progressed = false;
    while (sends_retired < next_send && ex.finished(sends[sends_retired])) {
      ++sends_retired;
      progressed = true;
    }
    while (received < next_receive_post && ex.finished(receives[received])) {
      ++received;
      progressed = true;
    }
    while (next_send < chunks && next_send < received &&
           next_send - sends_retired < kMaxChunksInFlight) {
      sends[next_send] = ex.send(next, static_cast<uint32_t>(next_send),
                                 data + next_send * chunk_bytes, chunk_length(next_send));
      ++next_send;
      progressed = true;
    }
    while (has_previous && next_receive_post < chunks &&
           next_receive_post < received + kMaxChunksInFlight) {
      receives[next_receive_post] =
          ex.recv(previous, static_cast<uint32_t>(next_receive_post),
                  data + next_receive_post * chunk_bytes, chunk_length(next_receive_post));
      ++next_receive_post;
      progressed = true;
    }
    if (!progressed) ex.wait_for_completion(seen);
  }
}

}  // namespace torchwan::engine
