#include "csrc/compressed_allreduce.h"

#include <fmt/format.h>

#include <algorithm>
#include <cstdlib>
#include <numeric>
#include <span>
#include <stdexcept>
#include <vector>

#include "csrc/argument_checks.h"
#include "csrc/compression/codec.h"
#include "csrc/exchange.h"

namespace torchwan::engine {
namespace {

using compression::Codec;
using compression::CodecConfig;

// The two phases use separate step ranges, so a fast rank's allgather message can never be
// matched by a peer still waiting in the all-to-all.
constexpr uint32_t kScatterPhase = 0;
constexpr uint32_t kGatherPhase = 1;

// Shard `i` of `count` elements on `size` ranks: whole codec blocks, as even as that allows. The
// blocks then sit where encoding the whole buffer would put them, so the error bound per block of
// the buffer holds, and the last shards may be short or empty.
struct Shards {
  size_t per_shard = 0;

  Shards(size_t count, int size, const CodecConfig& config) {
    const size_t ranks = static_cast<size_t>(size);
    const size_t block =
        config.block_size != 0 ? config.block_size : compression::kDefaultBlockSize;
    const size_t even = (count + ranks - 1) / ranks;
    per_shard = (even + block - 1) / block * block;
  }
  size_t offset(size_t count, size_t shard) const { return std::min(count, shard * per_shard); }
  size_t length(size_t count, size_t shard) const {
    return std::min(count, offset(count, shard) + per_shard) - offset(count, shard);
  }
};

bool stateless(Codec codec) {
  switch (codec) {
    case Codec::kFloat16:
    case Codec::kBFloat16:
    case Codec::kInt8Block:
    case Codec::kFloat8Block:
      return true;
    case Codec::kSignBlock:
    case Codec::kTopK:
      return false;
  }
  return false;
}

}  // namespace

AllreduceCompression AllreduceCompression::parse(std::string_view name) {
  AllreduceCompression policy;
  if (name.empty() || name == "none") return policy;
  if (name == "fp16") {
    policy.codec = Codec::kFloat16;
  } else if (name == "bf16") {
    policy.codec = Codec::kBFloat16;
  } else if (name == "int8") {
    policy.codec = Codec::kInt8Block;
  } else if (name == "fp8") {
    policy.codec = Codec::kFloat8Block;
  } else if (name == "sign" || name == "topk") {
    throw std::invalid_argument(fmt::format(
        "compression '{}' needs error feedback, which the backend's stateless allreduce cannot "
        "keep; use torchwan.hooks for it, or one of none, fp16, bf16, int8, fp8",
        name));
  } else {
    throw std::invalid_argument(
        fmt::format("unknown compression '{}': expected none, fp16, bf16, int8 or fp8", name));
  }
  return policy;
}

AllreduceCompression AllreduceCompression::from_env() {
  const char* value = std::getenv("TORCHWAN_COMPRESSION");
  if (value == nullptr) return {};
  try {
    return parse(value);
  } catch (const std::invalid_argument& error) {
    throw std::invalid_argument(fmt::format("TORCHWAN_COMPRESSION: {}", error.what()));
  }
}

std::string AllreduceCompression::name() const {
  if (!codec) return "none";
  switch (*codec) {
    case Codec::kFloat16:
      return "fp16";
    case Codec::kBFloat16:
      return "bf16";
    case Codec::kInt8Block:
      return "int8";
    case Codec::kFloat8Block:
      return "fp8";
    default:
      return compression::codec_name(*codec);
  }
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

void compressed_allreduce(const CollectiveContext& ctx, float* data, size_t count,
                          const CodecConfig& config) {
  constexpr const char* kName = "allreduce";
  if (!stateless(config.codec)) {
    throw std::invalid_argument(
        fmt::format("{}: codec {} is not stateless", kName, compression::codec_name(config.codec)));
  }
  const size_t bytes = checked_bytes(kName, count, sizeof(float));
  require_buffer(kName, data, bytes);
  if (!needs_exchange(ctx, bytes)) return;  // one rank: the sum is the data, exactly
  const int size = ctx.transport.size();
  const int rank = ctx.transport.rank();
  const auto ranks = static_cast<size_t>(size);
  const auto me = static_cast<size_t>(rank);
  const Shards shards(count, size, config);
  // Payload sizes are a function of the shard lengths, which every rank computes alike.
  std::vector<size_t> payload_bytes(ranks);
  std::vector<size_t> payload_offset(ranks);
  size_t total = 0;
  for (size_t shard = 0; shard < ranks; ++shard) {
    payload_bytes[shard] = compression::encoded_size(config, shards.length(count, shard));
    payload_offset[shard] = total;
    total += payload_bytes[shard];
  }
  const size_t own_bytes = payload_bytes[me];
  const size_t own_count = shards.length(count, me);

  Exchange ex(ctx, kName);
  std::vector<int> everyone(ranks);
  std::iota(everyone.begin(), everyone.end(), 0);
  // outgoing: this rank's encoding of every shard; incoming: every rank's encoding of shard `me`.
  uint8_t* outgoing = ex.scratch(total);
  uint8_t* incoming = ex.scratch(own_bytes * ranks);
  auto* sum = reinterpret_cast<float*>(ex.scratch(own_count * sizeof(float)));
  {
    Exchange::Subgroup scope(ex, everyone, kScatterPhase);
    std::vector<Exchange::Handle> received(ranks);
    for (int peer = 0; peer < size; ++peer) {
      if (peer == rank) continue;
      const auto index = static_cast<size_t>(peer);
      received[index] = ex.recv(peer, 0, incoming + index * own_bytes, own_bytes);
    }
    for (int peer = 0; peer < size; ++peer) {
      if (peer == rank) continue;
      const auto index = static_cast<size_t>(peer);
      const std::span<const float> shard(data + shards.offset(count, index),
                                         shards.length(count, index));
      compression::encode(config, shard, {outgoing + payload_offset[index], payload_bytes[index]});
      ex.send(peer, 0, outgoing + payload_offset[index], payload_bytes[index]);
    }
    // A fixed order (rank 0 first) makes the sum independent of arrival order.
    const std::span<float> accumulator(sum, own_count);
    std::fill(accumulator.begin(), accumulator.end(), 0.0f);
    const float* own = data + shards.offset(count, me);
    for (size_t from = 0; from < ranks; ++from) {
      if (from == me) {
        for (size_t i = 0; i < own_count; ++i) accumulator[i] += own[i];
      } else {
        ex.wait(received[from]);
        compression::decode_accumulate({incoming + from * own_bytes, own_bytes}, accumulator);
      }
    }
  }
  // Everyone, this rank included, decodes the same payloads below: bit-identical results.
  uint8_t* gathered = outgoing;  // its sends are complete (the sum waited for every receive)
  ex.wait_all();
  compression::encode(config, {sum, own_count}, {gathered + payload_offset[me], own_bytes});
  {
    Exchange::Subgroup scope(ex, everyone, kGatherPhase);
    for (int peer = 0; peer < size; ++peer) {
      if (peer == rank) continue;
      const auto index = static_cast<size_t>(peer);
      ex.recv(peer, 0, gathered + payload_offset[index], payload_bytes[index]);
    }
    for (int peer = 0; peer < size; ++peer) {
      if (peer == rank) continue;
      ex.send(peer, 0, gathered + payload_offset[me], own_bytes);
    }
    ex.wait_all();
  }
  // Checked before the output is written, so a mismatched call leaves the data untouched.
  ex.finish();
  for (size_t shard = 0; shard < ranks; ++shard) {
    compression::decode({gathered + payload_offset[shard], payload_bytes[shard]},
                        {data + shards.offset(count, shard), shards.length(count, shard)});
  }
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
