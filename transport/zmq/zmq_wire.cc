#include "transport/zmq/zmq_wire.h"

#include <algorithm>
#include <cstdio>

namespace torchwan::transport::zmq_detail {

namespace {

// Explicit little-endian codecs: the wire layout does not depend on the host or on struct padding.
template <typename Int>
void put(uint8_t*& out, Int value) {
  for (size_t i = 0; i < sizeof(Int); ++i) *out++ = static_cast<uint8_t>(value >> (8 * i));
}

template <typename Int>
Int get(const uint8_t*& in) {
  Int value = 0;
  for (size_t i = 0; i < sizeof(Int); ++i) value |= static_cast<Int>(Int{*in++} << (8 * i));
  return value;
}

std::string hex(uint64_t value) {
  char text[24];
  std::snprintf(text, sizeof(text), "0x%llx", static_cast<unsigned long long>(value));
  return text;
}

constexpr char kRecordHeader[] = "torchwan-zmq 1";
constexpr size_t kMaxRecordBytes = 64 * 1024;

}  // namespace

std::array<uint8_t, kHeaderBytes> encode_header(const Header& header) {
  std::array<uint8_t, kHeaderBytes> bytes{};
  uint8_t* out = bytes.data();
  put<uint32_t>(out, header.magic);
  put<uint16_t>(out, header.version);
  put<uint16_t>(out, static_cast<uint16_t>(header.type));
  put<uint64_t>(out, header.tag);
  put<uint64_t>(out, header.index);
  put<uint64_t>(out, header.total_length);
  put<uint64_t>(out, header.offset);
  put<uint64_t>(out, header.length);
  put<uint64_t>(out, header.job);
  put<uint64_t>(out, header.epoch);
  return bytes;
}

std::optional<Header> decode_header(const void* bytes, size_t size, size_t payload_size,
                                    std::string& why) {
  if (size != kHeaderBytes) {
    why = "header frame of " + std::to_string(size) + " bytes, expected " +
          std::to_string(kHeaderBytes);
    return std::nullopt;
  }
  const auto* in = static_cast<const uint8_t*>(bytes);
  Header header;
  header.magic = get<uint32_t>(in);
  header.version = get<uint16_t>(in);
  const auto type = get<uint16_t>(in);
  header.type = static_cast<MessageType>(type);
  header.tag = get<uint64_t>(in);
  header.index = get<uint64_t>(in);
  header.total_length = get<uint64_t>(in);
  header.offset = get<uint64_t>(in);
  header.length = get<uint64_t>(in);
  header.job = get<uint64_t>(in);
  header.epoch = get<uint64_t>(in);

  if (header.magic != kWireMagic) {
    why = "bad magic " + hex(header.magic) + " (not a torchwan zmq peer?)";
    return std::nullopt;
  }
  if (header.version != kWireVersion) {
    why = "protocol version " + std::to_string(header.version) + ", this build speaks " +
          std::to_string(kWireVersion) + " (mixed torchwan versions?)";
    return std::nullopt;
  }
  if (type < 1 || type > 5) {
    why = "unknown message type " + std::to_string(type);
    return std::nullopt;
  }
  // Written so that no sum can overflow: offset <= total and length <= total - offset.
  if (header.offset > header.total_length || header.length > header.total_length - header.offset) {
    why = "piece [" + std::to_string(header.offset) + ", +" + std::to_string(header.length) +
          ") lies outside its " + std::to_string(header.total_length) + "-byte message";
    return std::nullopt;
  }
  if (header.length != payload_size) {
    why = "header announces " + std::to_string(header.length) + " payload bytes but " +
          std::to_string(payload_size) + " came";
    return std::nullopt;
  }
  if (header.tag >= kMaxTag) {
    why = "tag " + std::to_string(header.tag) + " is out of range";
    return std::nullopt;
  }
  if (header.type != MessageType::kData && header.type != MessageType::kHello &&
      header.length != 0) {
    why = "control message of type " + std::to_string(type) + " with a payload";
    return std::nullopt;
  }
  if (header.type == MessageType::kHello &&
      (header.length != kHelloBytes || header.offset != 0 || header.total_length != kHelloBytes)) {
    why = "hello with a " + std::to_string(header.length) + "-byte body, expected " +
          std::to_string(kHelloBytes);
    return std::nullopt;
  }
  return header;
}

std::vector<uint8_t> encode_hello(const Hello& hello) {
  std::vector<uint8_t> bytes(kHelloBytes);
  uint8_t* out = bytes.data();
  put<uint32_t>(out, hello.rank);
  put<uint32_t>(out, hello.lane);
  put<uint32_t>(out, hello.size);
  put<uint32_t>(out, hello.lanes);
  put<uint64_t>(out, hello.chunk_bytes);
  std::copy(hello.proof.begin(), hello.proof.end(), out);
  return bytes;
}

std::optional<Hello> decode_hello(const void* bytes, size_t size, std::string& why) {
  if (size != kHelloBytes) {
    why =
        "hello body of " + std::to_string(size) + " bytes, expected " + std::to_string(kHelloBytes);
    return std::nullopt;
  }
  const auto* in = static_cast<const uint8_t*>(bytes);
  Hello hello;
  hello.rank = get<uint32_t>(in);
  hello.lane = get<uint32_t>(in);
  hello.size = get<uint32_t>(in);
  hello.lanes = get<uint32_t>(in);
  hello.chunk_bytes = get<uint64_t>(in);
  std::copy(in, in + security::kProofBytes, hello.proof.begin());
  return hello;
}

std::string check_hello(const Hello& hello, int peer, int lane, const Hello& expected) {
  if (hello.rank != static_cast<uint32_t>(peer) || hello.lane != static_cast<uint32_t>(lane)) {
    return "hello claims rank " + std::to_string(hello.rank) + " lane " +
           std::to_string(hello.lane) + " but came from rank " + std::to_string(peer) + " lane " +
           std::to_string(lane);
  }
  if (hello.size != expected.size) {
    return "rank " + std::to_string(peer) + " believes the group has " +
           std::to_string(hello.size) + " ranks, this rank " + std::to_string(expected.size);
  }
  if (hello.lanes != expected.lanes) {
    return "rank " + std::to_string(peer) + " uses " + std::to_string(hello.lanes) +
           " lanes, this rank " + std::to_string(expected.lanes) +
           " (every rank must use the same TORCHWAN_LANES)";
  }
  if (hello.chunk_bytes != expected.chunk_bytes) {
    return "rank " + std::to_string(peer) +
           " uses chunk_bytes=" + std::to_string(hello.chunk_bytes) + ", this rank " +
           std::to_string(expected.chunk_bytes) +
           " (every rank must use the same TORCHWAN_CHUNK_BYTES)";
  }
  return {};
}

std::string routing_id(int rank, int lane) {
  std::string id = "TW";
  id += static_cast<char>(rank & 0xFF);
  id += static_cast<char>((rank >> 8) & 0xFF);
  id += static_cast<char>(lane & 0xFF);
  id += static_cast<char>((lane >> 8) & 0xFF);
  return id;
}

std::optional<LaneOwner> decode_routing_id(const void* bytes, size_t size) {
  const auto* in = static_cast<const uint8_t*>(bytes);
  if (size != 6 || in[0] != 'T' || in[1] != 'W') return std::nullopt;
  in += 2;
  const int rank = get<uint16_t>(in);
  const int lane = get<uint16_t>(in);
  return LaneOwner{rank, lane};
}

std::string address_key(int rank) { return "tw/zmq/" + std::to_string(rank); }

std::vector<uint8_t> encode_address_record(const std::vector<std::string>& lane_endpoints) {
  std::string text = kRecordHeader;
  text += "\n";
  for (const auto& endpoint : lane_endpoints) text += endpoint + "\n";
  return {text.begin(), text.end()};
}

std::optional<std::vector<std::string>> decode_address_record(const std::vector<uint8_t>& bytes,
                                                              std::string& why) {
  if (bytes.size() > kMaxRecordBytes) {
    why = "address record of " + std::to_string(bytes.size()) + " bytes is implausibly large";
    return std::nullopt;
  }
  const std::string text(bytes.begin(), bytes.end());
  std::vector<std::string> lines;
  size_t start = 0;
  while (start < text.size()) {
    const size_t end = text.find('\n', start);
    if (end == std::string::npos) {
      why = "address record does not end with a newline";
      return std::nullopt;
    }
    lines.push_back(text.substr(start, end - start));
    start = end + 1;
  }
  if (lines.empty() || lines.front() != kRecordHeader) {
    why = "address record does not start with '" + std::string(kRecordHeader) +
          "' (another transport or version?)";
    return std::nullopt;
  }
  lines.erase(lines.begin());
  if (lines.empty()) {
    why = "address record lists no lanes";
    return std::nullopt;
  }
  for (const auto& endpoint : lines) {
    if (endpoint.rfind("tcp://", 0) != 0) {
      why = "address record holds a non-tcp endpoint '" + endpoint + "'";
      return std::nullopt;
    }
  }
  return lines;
}

}  // namespace torchwan::transport::zmq_detail
