#include "csrc/signature.h"

#include <algorithm>

#include "base/byte_io.h"

namespace torchwan::engine {
namespace {

// Record layout (little-endian):
//   0 magic "TWSG" | 4 version | 5 kind | 6 dtype | 7 op | 8 root:i32 | 12 flags:u32
//   16 count:u64 | 24 pair_send:u64 | 32 pair_recv:u64 | 40.. describe, NUL-padded
constexpr uint32_t kMagic = 0x47535754;  // "TWSG" in little-endian byte order
constexpr uint8_t kVersion = 1;
constexpr uint32_t kFlagHasPair = 1;
constexpr size_t kDescribeOffset = 40;
constexpr size_t kDescribeBytes = kSignatureBytes - kDescribeOffset;

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
  base::ByteWriter writer(out);
  writer.put(kMagic);
  writer.put(kVersion);
  writer.put(signature.kind);
  writer.put(signature.dtype);
  writer.put(signature.op);
  writer.put(signature.root);
  writer.put(signature.has_pair ? kFlagHasPair : 0);
  writer.put(signature.count);
  writer.put(signature.pair_send_bytes);
  writer.put(signature.pair_recv_bytes);
  // At most kDescribeBytes - 1 characters, so the text is always NUL-terminated.
  writer.put_bytes(signature.describe.data(),
                   std::min(signature.describe.size(), kDescribeBytes - 1));
  return out;
}

std::optional<WireSignature> decode_signature(const uint8_t* bytes, size_t length,
                                              std::string& why) {
  base::ByteReader in(bytes, length, "call signature");
  try {
    if (length != kSignatureBytes) {
      in.fail("a call signature is " + std::to_string(kSignatureBytes) + " bytes, got " +
              std::to_string(length));
    }
    if (in.get<uint32_t>("magic") != kMagic)
      in.reject("magic", "bad magic (not a torchwan call signature)");
    const auto version = in.get<uint8_t>("version");
    if (version != kVersion) {
      in.reject("version", "call signature version " + std::to_string(version) +
                               ", this rank speaks " + std::to_string(kVersion));
    }
    WireSignature signature;
    signature.kind = in.get<uint8_t>("kind");
    signature.dtype = in.get<uint8_t>("dtype");
    signature.op = in.get<uint8_t>("op");
    signature.root = in.get<int32_t>("root");
    const auto flags = in.get<uint32_t>("flags");
    if ((flags & ~kFlagHasPair) != 0) {
      in.reject("flags", "unknown call signature flags " + std::to_string(flags));
    }
    signature.has_pair = (flags & kFlagHasPair) != 0;
    signature.count = in.get<uint64_t>("count");
    signature.pair_send_bytes = in.get<uint64_t>("pair send bytes");
    signature.pair_recv_bytes = in.get<uint64_t>("pair receive bytes");
    const auto text = in.get_bytes(kDescribeBytes, "description");
    if (text.back() != 0) in.reject("description", "call signature text is not terminated");
    signature.describe = printable(text.data(), text.size());
    return signature;
  } catch (const base::MalformedBytes& malformed) {
    why = malformed.what();
    return std::nullopt;
  }
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
