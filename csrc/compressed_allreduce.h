// Allreduce of fp32 data with a compression codec on the wire: the one compressed allreduce of the
// project, behind both the backend's `compression` option (stateless codecs) and torchwan.hooks
// (any codec, with caller-owned error-feedback residuals). Bandwidth-bound WAN links gain the
// codec's ratio (about 4x for int8 and fp8, 2x for the 16-bit casts, 28x for sign) at the price of
// a bounded quantisation error.
//
// The buffer is cut into one shard per rank (whole codec blocks, so the blocks are the same as if
// the whole buffer were encoded at once). Each rank encodes the shards of the other ranks and
// sends them directly (all-to-all: one latency); rank r sums shard r over all ranks in fp32, in
// rank order (its own contribution unquantised), re-encodes the sum and sends it to every rank
// (allgather, again direct). Both phases run piece by piece and overlap (see
// kCompressedPieceElements). Every rank, the owner included, then decodes all W payloads: each
// element is quantised at most twice whatever the world size, and every rank ends with
// bit-identical results.
#pragma once

#include <cstddef>
#include <optional>
#include <span>
#include <string>
#include <string_view>

#include "csrc/codec_steps.h"
#include "csrc/collectives.h"
#include "csrc/compression/codec_types.h"
#include "csrc/dtype.h"

namespace torchwan::engine {

// Below this many bytes an allreduce is latency-bound: compressing would only add work.
constexpr size_t kCompressedAllreduceMinBytes = 64 * 1024;

// When, and with which codec, the backend compresses an allreduce. Every rank of a group must use
// the same policy (the same option or TORCHWAN_COMPRESSION on every rank).
struct AllreduceCompression {
  std::optional<compression::Codec> codec;  // empty: never compress
  size_t min_bytes = kCompressedAllreduceMinBytes;

  // "none" (or ""), "fp16", "bf16", "int8", "fp8". The biased codecs (sign, topk) need error
  // feedback, which a stateless collective cannot keep, so they are refused here
  // (std::invalid_argument); torchwan.hooks offers them.
  static AllreduceCompression parse(std::string_view name);
  // TORCHWAN_COMPRESSION, or none when unset.
  static AllreduceCompression from_env();
  // The option's text form, as parse() accepts it.
  std::string name() const;

  // Whether an allreduce of `bytes` bytes of `dtype` with `op` goes through the codec: floating
  // point (fp16, bf16, fp32, fp64) SUM of at least min_bytes. Everything else stays exact.
  bool applies(DataType dtype, ReduceOp op, size_t bytes) const;
};

// Shards move in pieces of at most this many elements (4 MiB of fp32, 1 MiB as int8), so that
// encoding, sending, summing and decoding overlap; enough pieces per shard to keep a long link
// busy while the first ones are summed. Pieces are made just small enough that their payloads
// travel unstriped, on one lane per peer (see compressed_allreduce.cc).
constexpr size_t kCompressedPieceElements = size_t{1} << 20;
// Elements per piece for `config` on a transport that stripes messages of `stripe_min_bytes` or
// more over its lanes: the most whole codec blocks, up to kCompressedPieceElements, whose payload
// stays below that (at least one block).
size_t compressed_piece_elements(const compression::CodecConfig& config, size_t stripe_min_bytes);
// A piece is summed in tiles of this many elements (64 KiB of fp32, within a core's L2 cache).
constexpr size_t kReduceTileElements = size_t{16} << 10;

// Caller-owned error-feedback residuals of one buffer, `count` floats each, zero at first and
// passed again with every later call for that buffer. `contribution` keeps what this rank's
// encoding of the other ranks' shards lost; `reduction` what the re-encoding of the shard this
// rank sums lost (only that shard's elements are used). Each encode adds its residual back before
// quantising, so nothing is lost for good: this is what makes the biased codecs (sign, top-k)
// converge. A non-finite result zeroes both.
struct ErrorFeedback {
  std::span<float> contribution;
  std::span<float> reduction;
};

// In place: every rank ends with the same approximation of the sum over all ranks of its `count`
// floats. `config` must be the same on every rank; a codec that needs error feedback (sign, top-k)
// needs `feedback`, and any codec may have it. config.seed seeds stochastic rounding (mixed with
// the rank, stage and piece of every encode). Like the other collectives: synchronous, checks
// ctx.signature, throws TransportError on failure. Where the host tier applies
// (compressed_allreduce_uses_host_tier), only the step between hosts is compressed.
// `piece_elements` (0: kCompressedPieceElements) only changes how the work overlaps, never the
// result; every rank must pass the same. `steps` (default: HostCodecSteps, the CPU codecs on host
// memory) says where `data` and the residuals live and runs the codecs there (codec_steps.h); the
// host tier sums in host shared memory, so a call that takes it refuses a caller's steps
// (std::invalid_argument, before anything is exchanged).
void compressed_allreduce(const CollectiveContext& ctx, float* data, size_t count,
                          const compression::CodecConfig& config, size_t piece_elements = 0,
                          const ErrorFeedback* feedback = nullptr, CodecSteps* steps = nullptr);

// Whether compressed_allreduce of `count` floats in `ctx` goes through the host tier: ranks share
// hosts as the host tier serves (several hosts of equal size, more than one rank each), the buffer
// is large enough for its striped scheme, and no other allreduce algorithm was forced.
bool compressed_allreduce_uses_host_tier(const CollectiveContext& ctx, size_t count);

// Bytes this rank sends for one compressed_allreduce of `count` elements on `size` ranks (the two
// phases together), for reporting the saving against an uncompressed ring allreduce.
size_t compressed_allreduce_bytes_sent(size_t count, int size, int rank,
                                       const compression::CodecConfig& config);

}  // namespace torchwan::engine
