// Uneven all-to-all: every rank posts its receives from and sends to every peer at once (one WAN
// latency, all links busy together) and copies its own block locally. Zero-length blocks are
// still sent, as empty messages, so a rank expecting bytes from a peer that sends none gets a
// size mismatch instead of waiting for the deadline.
#include <string>

#include "csrc/argument_checks.h"
#include "csrc/collectives.h"
#include "csrc/exchange.h"

namespace torchwan::engine {
namespace {

void require_layout(const char* which, std::span<const size_t> offsets,
                    std::span<const size_t> bytes, const void* buffer, size_t size) {
  if (offsets.size() != size || bytes.size() != size) {
    throw std::invalid_argument(
        std::string("alltoallv: ") + which + " offsets and sizes need " + std::to_string(size) +
        " entries, got " + std::to_string(offsets.size()) + " and " + std::to_string(bytes.size()));
  }
  for (size_t peer = 0; peer < size; ++peer) {
    if (offsets[peer] > SIZE_MAX - bytes[peer]) {
      throw std::invalid_argument(std::string("alltoallv: ") + which + " block " +
                                  std::to_string(peer) + " overflows the address space");
    }
    require_buffer("alltoallv", buffer, bytes[peer]);
  }
}

}  // namespace

void alltoallv(const CollectiveContext& ctx, const void* input,
               std::span<const size_t> send_offsets, std::span<const size_t> send_bytes,
               void* output, std::span<const size_t> recv_offsets,
               std::span<const size_t> recv_bytes) {
  const int size = ctx.transport.size();
  const auto rank = static_cast<size_t>(ctx.transport.rank());
  require_layout("send", send_offsets, send_bytes, input, static_cast<size_t>(size));
  require_layout("receive", recv_offsets, recv_bytes, output, static_cast<size_t>(size));
  if (send_bytes[rank] != recv_bytes[rank]) {
    throw std::invalid_argument("alltoallv: rank " + std::to_string(rank) + " sends itself " +
                                std::to_string(send_bytes[rank]) + " bytes but expects " +
                                std::to_string(recv_bytes[rank]));
  }
  const auto* in = static_cast<const uint8_t*>(input);
  auto* out = static_cast<uint8_t*>(output);
  if (size > 1) {
    // Per-pair sizes: counts legitimately differ between ranks, so the signature check compares
    // what each pair of ranks agreed to move.
    // Empty messages still need a valid address for some transports, and the caller's buffer
    // may be null when all its blocks are empty. Declared first: it outlives the requests.
    uint8_t token = 0;
    Exchange ex(ctx, "alltoallv", {send_bytes, recv_bytes});
    for (int peer = 0; peer < size; ++peer) {
      const auto index = static_cast<size_t>(peer);
      if (index == rank) continue;
      ex.recv(peer, 0, recv_bytes[index] > 0 ? out + recv_offsets[index] : &token,
              recv_bytes[index]);
    }
    for (int peer = 0; peer < size; ++peer) {
      const auto index = static_cast<size_t>(peer);
      if (index == rank) continue;
      ex.send(peer, 0, send_bytes[index] > 0 ? in + send_offsets[index] : &token,
              send_bytes[index]);
    }
    ex.wait_all();
    ex.finish();
  }
  // Last: the caller may have laid the blocks out so that this one overlaps what was sent.
  if (recv_bytes[rank] > 0) {
    copy_bytes(out + recv_offsets[rank], in + send_offsets[rank], recv_bytes[rank]);
  }
}

}  // namespace torchwan::engine
