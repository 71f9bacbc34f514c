#include "csrc/compressed_allreduce.h"

#include <fmt/format.h>

#include <algorithm>
#include <optional>
#include <span>
#include <stdexcept>
#include <vector>

#include "base/option_registry.h"
#include "csrc/algorithm_table.h"
#include "csrc/algorithm_tuning.h"
#include "csrc/argument_checks.h"
#include "csrc/codec_steps.h"
#include "csrc/compression/codec.h"
#include "csrc/compression/codec_table.h"
#include "csrc/exchange.h"
#include "csrc/hierarchical.h"
#include "csrc/topology.h"
#include "transport/options.h"

namespace torchwan::engine {
namespace {

using compression::Codec;
using compression::CodecConfig;

// Shard `i` of `count` elements on `size` ranks: whole codec blocks (single elements for codecs
// without blocks), as even as that allows. The blocks then sit where encoding the whole buffer
// would put them, so the error bound per block of the buffer holds, and the last shards may be
// short or empty.
struct Shards {
  size_t per_shard = 0;

  Shards(size_t count, int size, const CodecConfig& config) {
    const size_t ranks = static_cast<size_t>(size);
    const size_t block = compression::describe(config.codec).granularity(config);
    const size_t even = (count + ranks - 1) / ranks;
    per_shard = (even + block - 1) / block * block;
  }
  size_t offset(size_t count, size_t shard) const { return std::min(count, shard * per_shard); }
  size_t length(size_t count, size_t shard) const {
    return std::min(count, offset(count, shard) + per_shard) - offset(count, shard);
  }
};

}  // namespace

AllreduceCompression AllreduceCompression::parse(std::string_view name) {
  AllreduceCompression policy;
  if (name.empty() || name == "none") return policy;
  const compression::CodecDescriptor* descriptor = compression::find_codec(name);
  if (descriptor == nullptr) {
    throw std::invalid_argument(fmt::format("unknown compression '{}': expected none, {}", name,
                                            compression::codec_names(true)));
  }
  if (descriptor->needs_error_feedback) {
    throw std::invalid_argument(fmt::format(
        "compression '{}' needs error feedback, which the backend's stateless allreduce cannot "
        "keep; use torchwan.hooks for it, or one of none, {}",
        name, compression::codec_names(true)));
  }
  policy.codec = descriptor->codec;
  return policy;
}

AllreduceCompression AllreduceCompression::from_env() {
  return base::parse_env_option("compression", AllreduceCompression{},
                                &AllreduceCompression::parse);
}

std::string AllreduceCompression::name() const {
  return codec ? compression::codec_name(*codec) : "none";
}

bool AllreduceCompression::applies(DataType dtype, ReduceOp op, size_t bytes) const {
  if (!codec || op != ReduceOp::kSum || bytes < min_bytes) return false;
  switch (dtype) {
    case DataType::kFloat16:
    case DataType::kBFloat16:
    case DataType::kFloat32:
    case DataType::kFloat64:
      return true;
    default:
      return false;
  }
}

namespace {

// A shard is moved in pieces so that encoding, the network, the fp32 sum and decoding overlap:
// rank r can sum, re-encode and send back piece p of its shard while piece p+1 is still on its
// way. Pieces are whole codec blocks from the shard's start, so the blocks (and so the results)
// are the same for every piece size.
struct Pieces {
  size_t elements = 0;  // per piece (the last one of a shard may be short)
  size_t most = 0;      // pieces of the longest shard

  Pieces(const Shards& shards, const CodecConfig& config, size_t wanted) {
    // Few enough pieces that one call's requests stay bounded, whatever the buffer size.
    const size_t fewest = (shards.per_shard + kMaxPieces - 1) / kMaxPieces;
    elements = round_to_blocks(std::max({wanted, fewest, size_t{1}}), config);
    most = (shards.per_shard + elements - 1) / elements;
  }
  // `elements` rounded up to whole codec blocks.
  static size_t round_to_blocks(size_t elements, const CodecConfig& config) {
    const size_t block = compression::describe(config.codec).granularity(config);
    return (elements + block - 1) / block * block;
  }
  static constexpr size_t kMaxPieces = 0x7000;

  size_t count(size_t shard_length) const { return (shard_length + elements - 1) / elements; }
  size_t length(size_t shard_length, size_t piece) const {
    return std::min(elements, shard_length - piece * elements);
  }
};

// Where the encoded pieces of every shard sit in one buffer, shard after shard.
struct PayloadLayout {
  std::vector<std::vector<size_t>> offset;  // [shard][piece]
  std::vector<std::vector<size_t>> bytes;   // [shard][piece]
  size_t total = 0;

  PayloadLayout(size_t count, size_t ranks, const Shards& shards, const Pieces& pieces,
                const CodecConfig& config)
      : offset(ranks), bytes(ranks) {
    for (size_t shard = 0; shard < ranks; ++shard) {
      const size_t length = shards.length(count, shard);
      for (size_t piece = 0; piece < pieces.count(length); ++piece) {
        const size_t size = compression::encoded_size(config, pieces.length(length, piece));
        offset[shard].push_back(total);
        bytes[shard].push_back(size);
        total += size;
      }
    }
  }
};

// Every piece travels whole on one lane, the same lane for every piece to one peer. The transport
// stripes only messages of at least stripe_min_bytes over its lanes and puts a smaller one on lane
// tag % lanes (transport/striping.h). The all-to-all already keeps P-1 connections busy at once;
// striping would multiply them by the lane count and cut every connection's bursts smaller, which
// costs CPU per byte (BBR paces every burst): on the 2-core WAN lab, one lane per peer made the
// 256 MiB int8 allreduce 10-30% faster in most runs.
struct LaneSteps {
  // All pieces of a phase share one step (the transport matches a (peer, tag) in posting order,
  // and both ends post pieces in order). The all-to-all and the allgather use different steps, so
  // a fast rank's result can never be matched by a peer still waiting for a contribution, but
  // steps equal modulo the lane count, so both phases use the same lane.
  uint32_t scatter = 0;
  uint32_t gather = 0;

  explicit LaneSteps(const transport::TransportOptions& options)
      : gather(static_cast<uint32_t>(std::max(options.lanes, 1))) {}
};

// The codec's random numbers (stochastic rounding) depend only on (seed, element index), so every
// encode of a call draws its own: the caller's seed mixed with who encodes what.
enum Stage : uint64_t { kContribution = 0, kReduction = 1 };
CodecConfig seeded_config(const CodecConfig& config, int rank, Stage stage, size_t shard,
                          size_t piece) {
  CodecConfig seeded = config;
  uint64_t hash = config.seed ^ 0x9E3779B97F4A7C15ull;
  for (const uint64_t value :
       {static_cast<uint64_t>(rank), uint64_t{stage}, uint64_t{shard}, uint64_t{piece}}) {
    hash = (hash ^ value) * 0xBF58476D1CE4E5B9ull;  // splitmix64's mixing steps
    hash ^= hash >> 31;
  }
  seeded.seed = hash;
  return seeded;
}

// The algorithm over the ranks of `ex` (all of them, or the current subgroup). Returns with every
// request complete; the caller finishes the exchange.
void run_compressed_allreduce(Exchange& ex, const transport::TransportOptions& wire, float* data,
                              size_t count, const CodecConfig& config, size_t piece_elements,
                              const ErrorFeedback* feedback, CodecSteps& steps) {
  const int size = ex.size();
  const int rank = ex.rank();
  const auto ranks = static_cast<size_t>(size);
  const auto me = static_cast<size_t>(rank);
  const Shards shards(count, size, config);
  const Pieces pieces(shards, config,
                      piece_elements != 0
                          ? piece_elements
                          : compressed_piece_elements(config, wire.stripe_min_bytes));
  const LaneSteps lanes(wire);
  // Payload sizes follow from the shard lengths, which every rank computes alike.
  const PayloadLayout layout(count, ranks, shards, pieces, config);
  const size_t own_length = shards.length(count, me);
  const size_t own_pieces = pieces.count(own_length);
  const float* own = data + shards.offset(count, me);

  // outgoing: this rank's encoding of every other shard (the layout without shard `me`);
  // incoming: every peer's encoding of shard `me` (one slot per peer, in rank order without this
  // rank); gathered: every rank's encoded sum.
  const size_t own_total = own_pieces == 0 ? 0
                                           : layout.offset[me].back() + layout.bytes[me].back() -
                                                 layout.offset[me].front();
  uint8_t* outgoing = ex.scratch(layout.total - own_total);
  uint8_t* gathered = ex.scratch(layout.total);
  uint8_t* incoming = ex.scratch(own_total * (ranks - 1));
  auto outgoing_piece = [&](size_t shard, size_t piece) {
    const size_t offset = layout.offset[shard][piece];
    return outgoing + (shard > me ? offset - own_total : offset);
  };
  float* sum = steps.sum_memory(ex, own_length);
  auto incoming_piece = [&](size_t from, size_t piece) {
    const size_t slot = from < me ? from : from - 1;
    return incoming + slot * own_total + (layout.offset[me][piece] - layout.offset[me][0]);
  };

  // Every receive is posted up front; the sends follow as their payloads are ready.
  std::vector<std::vector<Exchange::Handle>> scattered(ranks);  // [from][piece], shard `me`
  std::vector<std::vector<Exchange::Handle>> results(ranks);    // [shard][piece]
  for (size_t peer = 0; peer < ranks; ++peer) {
    if (peer == me) continue;
    const int from = static_cast<int>(peer);
    for (size_t piece = 0; piece < own_pieces; ++piece) {
      scattered[peer].push_back(
          ex.recv(from, lanes.scatter, incoming_piece(peer, piece), layout.bytes[me][piece]));
    }
    for (size_t piece = 0; piece < layout.offset[peer].size(); ++piece) {
      results[peer].push_back(ex.recv(from, lanes.gather, gathered + layout.offset[peer][piece],
                                      layout.bytes[peer][piece]));
    }
  }

  // Sends of shard piece `piece` to every peer, starting with the next rank so that not every
  // rank feeds rank 0 first.
  auto scatter_piece = [&](size_t piece) {
    for (size_t hop = 1; hop < ranks; ++hop) {
      const size_t peer = (me + hop) % ranks;
      if (piece >= layout.offset[peer].size()) continue;
      const size_t first = shards.offset(count, peer) + piece * pieces.elements;
      uint8_t* payload = outgoing_piece(peer, piece);
      steps.encode(seeded_config(config, rank, kContribution, peer, piece), data + first,
                   feedback != nullptr ? feedback->contribution.data() + first : nullptr,
                   pieces.length(shards.length(count, peer), piece),
                   {payload, layout.bytes[peer][piece]});
      ex.send(static_cast<int>(peer), lanes.scatter, payload, layout.bytes[peer][piece]);
    }
  };
  // The sum goes tile by tile, every contribution to one tile before the next, so the tile stays
  // in cache instead of streaming the whole piece through memory once per rank.
  const size_t tile_elements = steps.tile_elements(config, pieces.elements);
  // Piece `piece` of this rank's shard once every rank's contribution is in: the fp32 sum in rank
  // order (its own contribution unquantised), so it does not depend on arrival order; then its
  // encoding goes to every peer.
  auto reduce_piece = [&](size_t piece) {
    const size_t first = piece * pieces.elements;
    const size_t length = pieces.length(own_length, piece);
    for (size_t tile = 0; tile < length; tile += tile_elements) {
      float* accumulator = sum + first + tile;
      const size_t tile_length = std::min(tile_elements, length - tile);
      steps.zero(accumulator, tile_length);
      for (size_t from = 0; from < ranks; ++from) {
        if (from == me) {
          steps.add(accumulator, own + first + tile, tile_length);
        } else {
          steps.decode_accumulate({incoming_piece(from, piece), layout.bytes[me][piece]}, tile,
                                  accumulator, tile_length);
        }
      }
    }
    uint8_t* payload = gathered + layout.offset[me][piece];
    steps.encode(seeded_config(config, rank, kReduction, me, piece), sum + first,
                 feedback != nullptr ? feedback->reduction.data() + shards.offset(count, me) + first
                                     : nullptr,
                 length, {payload, layout.bytes[me][piece]});
    for (size_t hop = 1; hop < ranks; ++hop) {
      const size_t peer = (me + hop) % ranks;
      ex.send(static_cast<int>(peer), lanes.gather, payload, layout.bytes[me][piece]);
    }
  };
  auto all_arrived = [&](size_t piece) {
    for (size_t from = 0; from < ranks; ++from) {
      if (from != me && !ex.finished(scattered[from][piece])) return false;
    }
    return true;
  };

  // Results arrive for piece p of shard s only after this rank sent its contribution to it, and
  // this rank's own piece is decoded only after it was summed, so decoding into `data` never
  // overwrites input still to be read. Decoding starts only once every peer's signature agrees,
  // so a mismatched call leaves `data` untouched. Everyone, this rank included, decodes the same
  // payloads: bit-identical results.
  std::vector<std::pair<size_t, size_t>> undecoded;  // (shard, piece), in the order they come
  for (size_t piece = 0; piece < pieces.most; ++piece) {
    for (size_t hop = 1; hop <= ranks; ++hop) {
      const size_t shard = (me + hop) % ranks;
      if (piece < layout.offset[shard].size()) undecoded.emplace_back(shard, piece);
    }
  }
  size_t next_scatter = 0;
  size_t next_reduce = 0;
  auto decode_ready = [&]() {
    bool decoded = false;
    for (auto it = undecoded.begin(); it != undecoded.end();) {
      const auto [shard, piece] = *it;
      const bool ready = shard == me ? piece < next_reduce : ex.finished(results[shard][piece]);
      if (!ready) {
        ++it;
        continue;
      }
      steps.decode({gathered + layout.offset[shard][piece], layout.bytes[shard][piece]},
                   data + shards.offset(count, shard) + piece * pieces.elements,
                   pieces.length(shards.length(count, shard), piece));
      it = undecoded.erase(it);
      decoded = true;
    }
    return decoded;
  };

  // One thread drives it all, in order of urgency: summing (peers wait on it), the next piece to
  // send, then decoding what has arrived.
  while (next_scatter < pieces.most || next_reduce < own_pieces || !undecoded.empty()) {
    const uint64_t seen = ex.completions();
    bool progressed = false;
    while (next_reduce < own_pieces && next_reduce < next_scatter && all_arrived(next_reduce)) {
      reduce_piece(next_reduce++);
      progressed = true;
    }
    if (next_scatter < pieces.most) {
      scatter_piece(next_scatter++);
      progressed = true;
    } else if (ex.signatures_agree()) {
      progressed = decode_ready() || progressed;
    }
    if (!progressed) ex.wait_for_completion(seen);
  }
  ex.wait_all();
}

// The phase of the step between hosts (host_tier_allreduce keeps 0 and 2 for the host's own).
constexpr uint32_t kBetweenHostsPhase = 1;

// Only the links between hosts carry compressed data: the host's ranks reduce-scatter the fp32
// buffer exactly (through shared memory where they can), each runs the compressed allreduce of
// its own shard with the ranks holding the same shard on the other hosts, then they allgather the
// results inside the host. Inside a host the bytes are cheap, so quantising there would lose
// accuracy for nothing; between hosts every local rank carries 1/m of the compressed data over
// its own connections. Error feedback covers the shard a rank compresses, the part of the
// residuals this rank uses.
void host_compressed_allreduce(Exchange& ex, const CollectiveContext& ctx, float* data,
                               size_t count, const CodecConfig& config, size_t piece_elements,
                               const ErrorFeedback* feedback, CodecSteps& steps) {
  const auto across = [&](const std::vector<int>& peers, uint8_t* shard, size_t shard_count) {
    auto* values = reinterpret_cast<float*>(shard);
    const auto first = static_cast<size_t>(values - data);
    std::optional<ErrorFeedback> part;
    if (feedback != nullptr) {
      part = ErrorFeedback{feedback->contribution.subspan(first, shard_count),
                           feedback->reduction.subspan(first, shard_count)};
    }
    Exchange::Subgroup between_hosts(ex, peers, kBetweenHostsPhase);
    run_compressed_allreduce(ex, ctx.transport.options(), values, shard_count, config,
                             piece_elements, part ? &*part : nullptr, steps);
  };
  host_tier_allreduce(ex, *ctx.topology, ctx.host_memory, reinterpret_cast<uint8_t*>(data), count,
                      DataType::kFloat32, ReduceOp::kSum, across);
}

}  // namespace

bool compressed_allreduce_uses_host_tier(const CollectiveContext& ctx, size_t count) {
  if (ctx.topology == nullptr || !has_host_tier(*ctx.topology)) return false;
  if (count * sizeof(float) < kStripedAllreduceMinBytes) return false;
  const Algorithm* forced =
      ctx.algorithms != nullptr ? ctx.algorithms->forced(Collective::kAllreduce) : nullptr;
  return forced == nullptr || *forced == Algorithm::kHosts;
}

size_t compressed_piece_elements(const CodecConfig& config, size_t stripe_min_bytes) {
  const size_t block = compression::describe(config.codec).granularity(config);
  size_t low = 1;  // blocks; kept even when it is too large
  size_t high = std::max<size_t>(kCompressedPieceElements / block, 1);
  if (compression::encoded_size(config, high * block) < stripe_min_bytes) return high * block;
  while (high - low > 1) {  // invariant: high blocks are too many
    const size_t middle = low + (high - low) / 2;
    if (compression::encoded_size(config, middle * block) < stripe_min_bytes) {
      low = middle;
    } else {
      high = middle;
    }
  }
  return low * block;
}

void compressed_allreduce(const CollectiveContext& ctx, float* data, size_t count,
                          const CodecConfig& config, size_t piece_elements,
                          const ErrorFeedback* feedback, CodecSteps* steps) {
  constexpr const char* kName = "allreduce";
  const compression::CodecDescriptor& codec = compression::describe(config.codec);
  if (codec.needs_error_feedback && feedback == nullptr) {
    throw std::invalid_argument(
        fmt::format("{}: codec {} needs error feedback: pass residuals", kName, codec.name));
  }
  if (feedback != nullptr &&
      (feedback->contribution.size() != count || feedback->reduction.size() != count)) {
    throw std::invalid_argument(
        fmt::format("{}: error-feedback residuals have {} and {} elements, the buffer {}", kName,
                    feedback->contribution.size(), feedback->reduction.size(), count));
  }
  const size_t bytes = checked_bytes(kName, count, sizeof(float));
  require_buffer(kName, data, bytes);
  if (!needs_exchange(ctx, bytes)) return;  // one rank: the sum is the data, exactly
  const bool host_tier = compressed_allreduce_uses_host_tier(ctx, count);
  if (host_tier && steps != nullptr) {
    // Refused before anything is exchanged: the host tier's shared memory holds host data only,
    // and every rank decides alike.
    throw std::invalid_argument(
        fmt::format("{}: the host tier needs the data in host memory", kName));
  }
  HostCodecSteps on_host;
  CodecSteps& where = steps != nullptr ? *steps : on_host;
  Exchange ex(ctx, kName);
  if (host_tier) {
    host_compressed_allreduce(ex, ctx, data, count, config, piece_elements, feedback, where);
  } else {
    run_compressed_allreduce(ex, ctx.transport.options(), data, count, config, piece_elements,
                             feedback, where);
  }
  ex.finish();
  // Every rank has the same result, so every rank resets alike.
  if (feedback != nullptr) where.reset_if_not_finite(data, count, *feedback);
}

size_t compressed_allreduce_bytes_sent(size_t count, int size, int rank,
                                       const CodecConfig& config) {
  const Shards shards(count, size, config);
  const auto me = static_cast<size_t>(rank);
  size_t sent = 0;
  for (size_t shard = 0; shard < static_cast<size_t>(size); ++shard) {
    if (shard == me) continue;
    sent += compression::encoded_size(config, shards.length(count, shard));  // all-to-all
    sent += compression::encoded_size(config, shards.length(count, me));     // allgather
  }
  return sent;
}

}  // namespace torchwan::engine
