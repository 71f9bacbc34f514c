#include "csrc/signature.h"

#include <algorithm>
#include <cstring>

namespace torchwan::engine {
namespace {

// Record layout (little-endian):
//   0 magic "TWSG" | 4 version | 5 kind | 6 dtype | 7 op | 8 root:i32 | 12 flags:u32
//   16 count:u64 | 24 pair_send:u64 | 32 pair_recv:u64 | 40.. describe, NUL-padded
constexpr uint8_t kMagic[4] = {'T', 'W', 'S', 'G'};
constexpr uint8_t kVersion = 1;
constexpr uint32_t kFlagHasPair = 1;
constexpr size_t kDescribeOffset = 40;
constexpr size_t kDescribeBytes = kSignatureBytes - kDescribeOffset;

void put_u32(uint8_t* out, uint32_t value) {
  for (int i = 0; i < 4; ++i) out[i] = static_cast<uint8_t>(value >> (8 * i));
}
void put_u64(uint8_t* out, uint64_t value) {
  for (int i = 0; i < 8; ++i) out[i] = static_cast<uint8_t>(value >> (8 * i));
}
uint32_t get_u32(const uint8_t* in) {
  uint32_t value = 0;
  for (int i = 0; i < 4; ++i) value |= static_cast<uint32_t>(in[i]) << (8 * i);
  return value;
}
uint64_t get_u64(const uint8_t* in) {
  uint64_t value = 0;
  for (int i = 0; i < 8; ++i) value |= static_cast<uint64_t>(in[i]) << (8 * i);
  return value;
}

// Printable ASCII only: the text ends up in exception messages and logs.
std::string printable(const uint8_t* text, size_t length) {
  std::string out;
  for (size_t i = 0; i < length && text[i] != 0; ++i) {
    out.push_back(text[i] >= 0x20 && text[i] < 0x7f ? static_cast<char>(text[i]) : '?');
  }
  return out;
}

// The caller's description when it gave one, else the raw fields.
std::string call_text(const WireSignature& signature) {
  if (!signature.describe.empty()) return signature.describe;
  return "collective kind " + std::to_string(signature.kind) + " (dtype " +
         std::to_string(signature.dtype) + ", count " + std::to_string(signature.count) + ", op " +
         std::to_string(signature.op) + ", root " + std::to_string(signature.root) + ")";
}

}  // namespace

WireSignature wire_signature(const CallSignature& signature) {
  WireSignature wire;
  wire.kind = signature.kind;
  wire.dtype = signature.dtype;
  wire.op = signature.op;
  wire.root = signature.root;
  wire.count = signature.count;
  wire.describe = printable(reinterpret_cast<const uint8_t*>(signature.describe.data()),
                            std::min(signature.describe.size(), kDescribeBytes - 1));
  return wire;
}

EncodedSignature encode_signature(const WireSignature& signature) {
  EncodedSignature out{};
  std::memcpy(out.data(), kMagic, sizeof(kMagic));
  out[4] = kVersion;
  out[5] = signature.kind;
  out[6] = signature.dtype;
  out[7] = signature.op;
  put_u32(out.data() + 8, static_cast<uint32_t>(signature.root));
  put_u32(out.data() + 12, signature.has_pair ? kFlagHasPair : 0);
  put_u64(out.data() + 16, signature.count);
  put_u64(out.data() + 24, signature.pair_send_bytes);
  put_u64(out.data() + 32, signature.pair_recv_bytes);
  // At most kDescribeBytes - 1 characters, so the text is always NUL-terminated.
  const size_t length = std::min(signature.describe.size(), kDescribeBytes - 1);
  std::memcpy(out.data() + kDescribeOffset, signature.describe.data(), length);
  return out;
}

std::optional<WireSignature> decode_signature(const uint8_t* bytes, size_t length,
                                              std::string& why) {
  if (length != kSignatureBytes) {
    why = "a call signature is " + std::to_string(kSignatureBytes) + " bytes, got " +
          std::to_string(length);
    return std::nullopt;
  }
  if (std::memcmp(bytes, kMagic, sizeof(kMagic)) != 0) {
    why = "bad magic (not a torchwan call signature)";
    return std::nullopt;
  }
  if (bytes[4] != kVersion) {
    why = "call signature version " + std::to_string(bytes[4]) + ", this rank speaks " +
          std::to_string(kVersion);
    return std::nullopt;
  }
  const uint32_t flags = get_u32(bytes + 12);
  if ((flags & ~kFlagHasPair) != 0) {
    why = "unknown call signature flags " + std::to_string(flags);
    return std::nullopt;
  }
  if (bytes[kSignatureBytes - 1] != 0) {
    why = "call signature text is not terminated";
    return std::nullopt;
  }
  WireSignature signature;
  signature.kind = bytes[5];
  signature.dtype = bytes[6];
  signature.op = bytes[7];
  signature.root = static_cast<int32_t>(get_u32(bytes + 8));
  signature.has_pair = (flags & kFlagHasPair) != 0;
  signature.count = get_u64(bytes + 16);
  signature.pair_send_bytes = get_u64(bytes + 24);
  signature.pair_recv_bytes = get_u64(bytes + 32);
  signature.describe = printable(bytes + kDescribeOffset, kDescribeBytes);
  return signature;
}

std::string signature_mismatch(const WireSignature& mine, int my_rank, const WireSignature& theirs,
                               int their_rank) {
  const std::string me = "rank " + std::to_string(my_rank);
  const std::string them = "rank " + std::to_string(their_rank);
  const bool same_call = mine.kind == theirs.kind && mine.dtype == theirs.dtype &&
                         mine.op == theirs.op && mine.root == theirs.root &&
                         mine.has_pair == theirs.has_pair;
  // Per-pair sizes replace the count where counts may legitimately differ between ranks.
  const bool same_size = mine.has_pair ? true : mine.count == theirs.count;
  if (!same_call || !same_size) {
    std::string text =
        them + " called " + call_text(theirs) + " but " + me + " called " + call_text(mine);
    // Identical descriptions would hide the difference: name the raw fields too.
    if (call_text(theirs) == call_text(mine)) {
      WireSignature their_fields = theirs;
      WireSignature my_fields = mine;
      their_fields.describe.clear();
      my_fields.describe.clear();
      text += " (" + them + ": " + call_text(their_fields) + "; " + me + ": " +
              call_text(my_fields) + ")";
    }
    return text;
  }
  if (mine.has_pair && (theirs.pair_send_bytes != mine.pair_recv_bytes ||
                        theirs.pair_recv_bytes != mine.pair_send_bytes)) {
    return them + " called " + call_text(theirs) + " sending " +
           std::to_string(theirs.pair_send_bytes) + " bytes to " + me + " and expecting " +
           std::to_string(theirs.pair_recv_bytes) + " from it, but " + me + " called " +
           call_text(mine) + " expecting " + std::to_string(mine.pair_recv_bytes) + " bytes from " +
           them + " and sending " + std::to_string(mine.pair_send_bytes) + " to it";
  }
  return {};
}

}  // namespace torchwan::engine
