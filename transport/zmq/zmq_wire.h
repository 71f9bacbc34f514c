// What the ZeroMQ transport puts on the wire and in the bootstrap store. Every wire message is two
// frames, [header, payload]: a fixed little-endian header (magic, version, type, tag, message
// index, total length, piece offset, piece length, job id hash, membership epoch) and the bytes it
// describes. Decoders check every
// field against the frame sizes before anyone touches memory, so a malformed or foreign message is
// rejected with a reason, never read out of bounds.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "security/job_secret.h"
#include "transport/request.h"

namespace torchwan::transport::zmq_detail {

inline constexpr uint32_t kWireMagic = 0x515A5754;  // "TWZQ" in little-endian byte order
// 2: job and epoch in every header, and a proof of the job secret in the hello.
inline constexpr uint16_t kWireVersion = 2;

enum class MessageType : uint16_t {
  kData = 1,    // one piece of a message
  kHello = 2,   // first message on every connection; payload is a Hello
  kCancel = 3,  // the sender canceled message (tag, index) before all its pieces left
  // Orderly departure: a rank whose transport shuts down sends kBye on each DEALER, after
  // everything it already sent there, and the peer's ROUTER answers kByeAck on that connection.
  kBye = 4,
  kByeAck = 5,
};

struct Header {
  uint32_t magic = kWireMagic;
  uint16_t version = kWireVersion;
  MessageType type = MessageType::kData;
  uint64_t tag = 0;
  uint64_t index = 0;         // per (sender, receiver, tag): the n-th message with this tag
  uint64_t total_length = 0;  // of the whole message
  uint64_t offset = 0;        // of this piece within the message
  uint64_t length = 0;        // of this piece; equals the payload frame's size
  // Whom the message is for: the receiver drops frames of another job or membership epoch, so
  // traffic recorded in one epoch cannot be replayed into the next.
  uint64_t job = 0;  // job_id_hash(TransportOptions::job_id)
  uint64_t epoch = 0;
};
inline constexpr size_t kHeaderBytes = 64;

std::array<uint8_t, kHeaderBytes> encode_header(const Header& header);
// Decodes a header frame and checks it against the size of the payload frame that came with it.
// Returns nothing and sets `why` when the frame is not a valid header of this protocol version.
std::optional<Header> decode_header(const void* bytes, size_t size, size_t payload_size,
                                    std::string& why);

// The payload of a kHello message: who is speaking, the settings both ends must share, and the
// proof that the speaker holds the job secret (DataAuth::prove; zero without a secret).
struct Hello {
  uint32_t rank = 0;
  uint32_t lane = 0;
  uint32_t size = 0;
  uint32_t lanes = 0;
  uint64_t chunk_bytes = 0;
  security::Proof proof{};
};
inline constexpr size_t kHelloBytes = 24 + security::kProofBytes;

std::vector<uint8_t> encode_hello(const Hello& hello);
std::optional<Hello> decode_hello(const void* bytes, size_t size, std::string& why);
// Empty when `hello` is what rank `peer` must send on `lane` of a group shaped like `expected`
// (whose rank field is ignored); else why not.
std::string check_hello(const Hello& hello, int peer, int lane, const Hello& expected);

// The ZMQ routing id of rank `rank`'s DEALER on `lane`. It never starts with a zero byte (ZMQ
// reserves those for ids it generates), so a socket that did not set one is told apart.
std::string routing_id(int rank, int lane);
struct LaneOwner {
  int rank;
  int lane;
};
std::optional<LaneOwner> decode_routing_id(const void* bytes, size_t size);

// The store key under which `rank` publishes its lane endpoints.
std::string address_key(int rank);
// One ROUTER endpoint ("tcp://host:port") per lane.
std::vector<uint8_t> encode_address_record(const std::vector<std::string>& lane_endpoints);
std::optional<std::vector<std::string>> decode_address_record(const std::vector<uint8_t>& bytes,
                                                              std::string& why);

}  // namespace torchwan::transport::zmq_detail
