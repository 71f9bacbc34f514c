// The control wire both links speak (transport/core/control_wire.h): every message round-trips,
// every malformation is rejected with a WireError that names it, and hellos that disagree on the
// group's shape are explained.
#include <gtest/gtest.h>

#include <cstdint>
#include <random>
#include <string>
#include <variant>
#include <vector>

#include "transport/core/control_wire.h"

namespace torchwan::transport::core {
namespace {

bool contains(const std::string& text, const std::string& part) {
  return text.find(part) != std::string::npos;
}

// The decoder's complaint about `bytes`, or "" when it accepts them.
std::string complaint(const std::vector<uint8_t>& bytes) {
  try {
    decode_control(bytes);
    return "";
  } catch (const WireError& malformed) {
    EXPECT_EQ(malformed.kind(), ErrorKind::kProtocol);
    return malformed.what();
  }
}

Hello sample_hello() {
  Hello hello;
  hello.rank = 3;
  hello.size = 4;
  hello.lane = 1;
  hello.lanes = 2;
  hello.chunk_bytes = 4 << 20;
  hello.stripe_min_bytes = 1 << 20;
  for (size_t i = 0; i < hello.proof.size(); ++i) hello.proof[i] = static_cast<uint8_t>(i * 7);
  return hello;
}

TEST(ControlWire, EveryMessageRoundTripsInTheSameSize) {
  const Hello hello = sample_hello();
  const auto hello_bytes = encode_control(hello);
  ASSERT_EQ(hello_bytes.size(), kControlBytes);
  EXPECT_EQ(hello_bytes[0], 'T');  // the little-endian magic "TWWN"
  EXPECT_EQ(hello_bytes[3], 'N');
  const auto decoded = std::get<Hello>(decode_control(hello_bytes));
  EXPECT_EQ(decoded.rank, 3u);
  EXPECT_EQ(decoded.size, 4u);
  EXPECT_EQ(decoded.lane, 1u);
  EXPECT_EQ(decoded.lanes, 2u);
  EXPECT_EQ(decoded.chunk_bytes, uint64_t{4} << 20);
  EXPECT_EQ(decoded.stripe_min_bytes, uint64_t{1} << 20);
  EXPECT_EQ(decoded.proof, hello.proof);

  EXPECT_TRUE(std::holds_alternative<Heartbeat>(decode_control(encode_control(Heartbeat{}))));
  EXPECT_TRUE(std::holds_alternative<GoodbyeAck>(decode_control(encode_control(GoodbyeAck{}))));
  const auto goodbye =
      std::get<Goodbye>(decode_control(encode_control(Goodbye{Departure::kAbort, "lost GPU 3"})));
  EXPECT_EQ(goodbye.departure, Departure::kAbort);
  EXPECT_EQ(goodbye.reason, "lost GPU 3");
  EXPECT_EQ(describe(goodbye), "a goodbye");
}

TEST(ControlWire, LongReasonsAreCutToFit) {
  const std::string reason(1000, 'x');
  const auto bytes = encode_control(Goodbye{Departure::kShutdown, reason});
  ASSERT_EQ(bytes.size(), kControlBytes);
  const auto goodbye = std::get<Goodbye>(decode_control(bytes));
  EXPECT_GT(goodbye.reason.size(), 200u);
  EXPECT_EQ(goodbye.reason, reason.substr(0, goodbye.reason.size()));
}

TEST(ControlWire, EveryMalformationIsNamed) {
  const auto good = encode_control(Goodbye{Departure::kShutdown, "bye"});
  auto bad = good;
  bad.pop_back();
  EXPECT_TRUE(contains(complaint(bad), "255 bytes, expected 256")) << complaint(bad);
  EXPECT_TRUE(contains(complaint({}), "0 bytes")) << complaint({});
  bad = good;
  bad[0] ^= 0xFF;
  EXPECT_TRUE(contains(complaint(bad), "bad magic")) << complaint(bad);
  bad = good;
  bad[4] = static_cast<uint8_t>(kWireVersion + 1);
  EXPECT_TRUE(contains(complaint(bad), "protocol version " + std::to_string(kWireVersion + 1)))
      << complaint(bad);
  bad = good;
  bad[6] = 9;  // the type
  EXPECT_TRUE(contains(complaint(bad), "unknown control type 9")) << complaint(bad);
  bad = good;
  bad[8] = 250;  // the body length, more than fits
  EXPECT_TRUE(contains(complaint(bad), "body of 250 bytes")) << complaint(bad);
  bad = encode_control(Goodbye{});
  bad[8] = 2;  // a body that ends inside the goodbye's fixed fields
  EXPECT_TRUE(contains(complaint(bad), "truncated at goodbye reason length")) << complaint(bad);
  bad = good;
  bad[12] = 7;  // the departure
  EXPECT_TRUE(contains(complaint(bad), "unknown departure 7")) << complaint(bad);
  bad = good;
  bad[14] = 200;  // the reason's length, past the body
  EXPECT_TRUE(contains(complaint(bad), "truncated at goodbye reason")) << complaint(bad);
  bad = good;
  bad.back() = 1;  // padding
  EXPECT_TRUE(contains(complaint(bad), "nonzero bytes after its body")) << complaint(bad);
  bad = encode_control(Heartbeat{});
  bad[8] = 4;  // a heartbeat has no body
  EXPECT_TRUE(contains(complaint(bad), "trailing bytes")) << complaint(bad);
  EXPECT_TRUE(contains(complaint(bad), "malformed control message")) << complaint(bad);
}

TEST(ControlWire, RandomBytesNeverDecodeInconsistently) {
  std::mt19937_64 random(99);
  const auto valid = encode_control(sample_hello());
  int accepted = 0;
  for (int i = 0; i < 100000; ++i) {
    auto bytes = valid;
    // A few flipped bytes in a valid message, so deeper checks are reached too.
    for (int flips = 1 + static_cast<int>(random() % 3); flips > 0; --flips) {
      bytes[random() % bytes.size()] = static_cast<uint8_t>(random());
    }
    try {
      const auto message = decode_control(bytes);
      ++accepted;
      if (const auto* goodbye = std::get_if<Goodbye>(&message)) {
        ASSERT_LT(goodbye->reason.size(), kControlBytes);
      }
    } catch (const WireError& malformed) {
      ASSERT_TRUE(contains(malformed.what(), "malformed control message")) << malformed.what();
    }
  }
  EXPECT_GT(accepted, 100);  // flips inside the proof or the fields keep a valid shape
}

TEST(ControlWire, MismatchedHellosAreExplained) {
  const Hello hello = sample_hello();
  Hello expected = hello;
  expected.rank = 0;
  EXPECT_EQ(check_hello(hello, 3, 1, expected), "");
  EXPECT_TRUE(contains(check_hello(hello, 2, 1, expected), "claims rank 3 lane 1"));
  EXPECT_TRUE(contains(check_hello(hello, 3, 0, expected), "came from rank 3 lane 0"));
  expected.size = 5;
  EXPECT_TRUE(contains(check_hello(hello, 3, 1, expected), "has 4 ranks, this rank 5"));
  expected = hello;
  expected.lanes = 8;
  EXPECT_TRUE(contains(check_hello(hello, 3, 1, expected), "TORCHWAN_LANES"));
  expected = hello;
  expected.chunk_bytes = 1 << 20;
  EXPECT_TRUE(contains(check_hello(hello, 3, 1, expected), "TORCHWAN_CHUNK_BYTES"));
  expected = hello;
  expected.stripe_min_bytes = 1;
  EXPECT_TRUE(contains(check_hello(hello, 3, 1, expected), "TORCHWAN_STRIPE_MIN_BYTES"));
}

}  // namespace
}  // namespace torchwan::transport::core
