#include "transport/core/control_wire.h"

#include <algorithm>
#include <type_traits>
#include <utility>

namespace torchwan::transport::core {

namespace {

// Preamble, then the body's length; the rest of the kControlBytes is zero.
constexpr size_t kControlHeaderBytes = kPreambleBytes + sizeof(uint32_t);
constexpr size_t kMaxBodyBytes = kControlBytes - kControlHeaderBytes;
constexpr size_t kGoodbyeFixedBytes = 2 * sizeof(uint16_t);
constexpr size_t kMaxReasonBytes = kMaxBodyBytes - kGoodbyeFixedBytes;

// A message's ControlType is its alternative's position in ControlMessage, from 1.
static_assert(std::is_same_v<std::variant_alternative_t<0, ControlMessage>, Hello> &&
              std::is_same_v<std::variant_alternative_t<1, ControlMessage>, Heartbeat> &&
              std::is_same_v<std::variant_alternative_t<2, ControlMessage>, Goodbye> &&
              std::is_same_v<std::variant_alternative_t<3, ControlMessage>, GoodbyeAck>);
static_assert(static_cast<uint16_t>(ControlType::kGoodbyeAck) ==
              std::variant_size_v<ControlMessage>);

ControlType type_of(const ControlMessage& message) {
  return static_cast<ControlType>(message.index() + 1);
}

// The hello's fixed fields in wire order, with the names errors use; the proof follows them.
constexpr std::pair<uint32_t Hello::*, const char*> kHelloCounts[] = {
    {&Hello::rank, "hello rank"},
    {&Hello::size, "hello size"},
    {&Hello::lane, "hello lane"},
    {&Hello::lanes, "hello lanes"}};
constexpr std::pair<uint64_t Hello::*, const char*> kHelloSizes[] = {
    {&Hello::chunk_bytes, "hello chunk_bytes"},
    {&Hello::stripe_min_bytes, "hello stripe_min_bytes"}};

void encode_body(const ControlMessage& message, ByteWriter& out) {
  if (const auto* hello = std::get_if<Hello>(&message)) {
    for (const auto& [field, name] : kHelloCounts) out.put(hello->*field);
    for (const auto& [field, name] : kHelloSizes) out.put(hello->*field);
    out.put_bytes(hello->proof.data(), hello->proof.size());
  } else if (const auto* goodbye = std::get_if<Goodbye>(&message)) {
    const size_t reason_length = std::min(goodbye->reason.size(), kMaxReasonBytes);
    out.put<uint16_t>(static_cast<uint16_t>(goodbye->departure));
    out.put<uint16_t>(static_cast<uint16_t>(reason_length));
    out.put_bytes(goodbye->reason.data(), reason_length);
  }
}

Hello decode_hello(ByteReader& in) {
  Hello hello;
  for (const auto& [field, name] : kHelloCounts) hello.*field = in.get<uint32_t>(name);
  for (const auto& [field, name] : kHelloSizes) hello.*field = in.get<uint64_t>(name);
  const auto proof = in.get_bytes(hello.proof.size(), "hello proof");
  std::copy(proof.begin(), proof.end(), hello.proof.begin());
  return hello;
}

Goodbye decode_goodbye(ByteReader& in) {
  Goodbye goodbye;
  const auto departure = in.get<uint16_t>("goodbye departure");
  if (departure != static_cast<uint16_t>(Departure::kShutdown) &&
      departure != static_cast<uint16_t>(Departure::kAbort)) {
    in.reject("goodbye departure", "unknown departure " + std::to_string(departure));
  }
  goodbye.departure = static_cast<Departure>(departure);
  const auto reason_length = in.get<uint16_t>("goodbye reason length");
  const auto reason = in.get_bytes(reason_length, "goodbye reason");
  goodbye.reason.assign(reason.begin(), reason.end());
  return goodbye;
}

ControlMessage decode_body(ControlType type, ByteReader& body) {
  switch (type) {
    case ControlType::kHello:
      return decode_hello(body);
    case ControlType::kGoodbye:
      return decode_goodbye(body);
    case ControlType::kHeartbeat:
      return Heartbeat{};
    case ControlType::kGoodbyeAck:
      return GoodbyeAck{};
  }
  return Heartbeat{};  // not reached: decode_control checked the type
}

}  // namespace

std::vector<uint8_t> encode_control(const ControlMessage& message) {
  std::vector<uint8_t> bytes(kControlBytes, 0);
  ByteWriter out(bytes);
  write_preamble(out, static_cast<uint16_t>(type_of(message)));
  out.put<uint32_t>(0);  // the body's length, known below
  encode_body(message, out);
  out.put_at<uint32_t>(kPreambleBytes, static_cast<uint32_t>(out.size() - kControlHeaderBytes));
  return bytes;  // the rest stays zero
}

ControlMessage decode_control(const void* bytes, size_t size) {
  ByteReader in(bytes, size, "control message");
  if (size != kControlBytes) {
    in.fail(std::to_string(size) + " bytes, expected " + std::to_string(kControlBytes));
  }
  const uint16_t type = read_preamble(in);
  if (type < static_cast<uint16_t>(ControlType::kHello) ||
      type > std::variant_size_v<ControlMessage>) {
    in.reject("type", "unknown control type " + std::to_string(type));
  }
  const auto body_length = in.get<uint32_t>("body length");
  if (body_length > kMaxBodyBytes) {
    in.reject("body length", "body of " + std::to_string(body_length) + " bytes, at most " +
                                 std::to_string(kMaxBodyBytes) + " fit");
  }
  ByteReader body(in.get_bytes(body_length, "body"), "control message body");
  const auto padding = in.get_bytes(in.remaining(), "padding");
  if (std::any_of(padding.begin(), padding.end(), [](uint8_t byte) { return byte != 0; })) {
    in.reject("padding", "nonzero bytes after its body");
  }
  ControlMessage message = decode_body(static_cast<ControlType>(type), body);
  body.expect_end();
  return message;
}

std::string describe(const ControlMessage& message) {
  static constexpr const char* kDescriptions[] = {"a hello", "a heartbeat", "a goodbye",
                                                  "a goodbye acknowledgement"};
  return kDescriptions[message.index()];
}

Hello expected_hello(const TransportOptions& options, int size) {
  Hello hello;
  hello.size = static_cast<uint32_t>(size);
  hello.lanes = static_cast<uint32_t>(options.lanes);
  hello.chunk_bytes = options.chunk_bytes;
  hello.stripe_min_bytes = options.stripe_min_bytes;
  return hello;
}

std::string check_hello(const Hello& hello, int peer, int lane, const Hello& expected) {
  if (hello.rank != static_cast<uint32_t>(peer) || hello.lane != static_cast<uint32_t>(lane)) {
    return "hello claims rank " + std::to_string(hello.rank) + " lane " +
           std::to_string(hello.lane) + " but came from rank " + std::to_string(peer) + " lane " +
           std::to_string(lane);
  }
  const std::string who = "rank " + std::to_string(peer);
  if (hello.size != expected.size) {
    return who + " believes the group has " + std::to_string(hello.size) + " ranks, this rank " +
           std::to_string(expected.size);
  }
  auto differs = [&](uint64_t theirs, uint64_t ours, const std::string& option) {
    return who + " uses " + option + "=" + std::to_string(theirs) + ", this rank " +
           std::to_string(ours) + " (every rank must use the same TORCHWAN_" + option + ")";
  };
  if (hello.lanes != expected.lanes) return differs(hello.lanes, expected.lanes, "LANES");
  if (hello.chunk_bytes != expected.chunk_bytes) {
    return differs(hello.chunk_bytes, expected.chunk_bytes, "CHUNK_BYTES");
  }
  if (hello.stripe_min_bytes != expected.stripe_min_bytes) {
    return differs(hello.stripe_min_bytes, expected.stripe_min_bytes, "STRIPE_MIN_BYTES");
  }
  return {};
}

}  // namespace torchwan::transport::core
