// The relay's frames: every frame round-trips, and malformed input is a RelayWireError naming the
// field and offset.
#include "relay/relay_wire.h"

#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "relay/relay_client.h"
#include "thrown_message.h"

namespace torchwan::relay {
namespace {

TEST(RelayWire, EveryFrameRoundTrips) {
  const std::vector<Frame> frames = {register_frame("job-1", "rank-3"),
                                     registered_frame(4u << 20, 256u << 10),
                                     data_frame("rank-7", 5, 65536),
                                     credit_frame("rank-2", 9, 123456789),
                                     no_route_frame("rank-9", "not registered"),
                                     refused_frame("flooded")};
  for (const Frame& frame : frames) {
    const Frame back = decode_frame(encode_frame(frame));
    EXPECT_EQ(back.type, frame.type);
    EXPECT_EQ(back.job_id, frame.job_id);
    EXPECT_EQ(back.member, frame.member);
    EXPECT_EQ(back.peer, frame.peer);
    EXPECT_EQ(back.lane, frame.lane);
    EXPECT_EQ(back.bytes, frame.bytes);
    EXPECT_EQ(back.window_bytes, frame.window_bytes);
    EXPECT_EQ(back.max_chunk_bytes, frame.max_chunk_bytes);
    EXPECT_EQ(back.reason, frame.reason);
  }
}

std::string decode_error(const std::vector<uint8_t>& bytes) {
  return testing::thrown_message<RelayWireError>([&] { decode_frame(bytes); });
}

TEST(RelayWire, MalformedInputNamesFieldAndOffset) {
  EXPECT_NE(decode_error({1, 2, 3}).find("magic"), std::string::npos);
  auto bytes = encode_frame(credit_frame("peer", 1, 10));
  bytes[0] ^= 0xff;
  EXPECT_NE(decode_error(bytes).find("not a relay frame"), std::string::npos);

  bytes = encode_frame(credit_frame("peer", 1, 10));
  bytes[4] = 9;
  EXPECT_NE(decode_error(bytes).find("version 9"), std::string::npos);

  bytes = encode_frame(credit_frame("peer", 1, 10));
  bytes[5] = 77;
  EXPECT_NE(decode_error(bytes).find("unknown frame type 77"), std::string::npos);

  bytes = encode_frame(data_frame("peer", 1, 10));
  bytes.pop_back();
  const std::string truncated = decode_error(bytes);
  EXPECT_NE(truncated.find("payload length"), std::string::npos) << truncated;
  EXPECT_NE(truncated.find("offset"), std::string::npos) << truncated;

  bytes = encode_frame(data_frame("peer", 1, 10));
  bytes.push_back(0);
  EXPECT_NE(decode_error(bytes).find("trailing"), std::string::npos) << decode_error(bytes);

  EXPECT_NE(decode_error(encode_frame(credit_frame("peer", 1, 0))).find("credit bytes"),
            std::string::npos);
  EXPECT_NE(decode_error(encode_frame(data_frame("", 1, 1))).find("peer"), std::string::npos);
  EXPECT_NE(
      decode_error(encode_frame(register_frame("job", std::string(300, 'x')))).find("member id"),
      std::string::npos);
}

TEST(RelayEndpoints, ParsesTheEnvironmentListAndNamesABadEntry) {
  EXPECT_EQ(parse_relay_endpoints("relay.example:7000,10.0.0.2:7001"),
            (std::vector<std::string>{"tcp://relay.example:7000", "tcp://10.0.0.2:7001"}));
  for (const std::string bad : {"nohost", "host:", "host:99999", ":7000", "host:7x"}) {
    try {
      parse_relay_endpoints(bad);
      ADD_FAILURE() << bad << " was accepted";
    } catch (const std::invalid_argument& error) {
      EXPECT_NE(std::string(error.what()).find("'" + bad + "'"), std::string::npos) << error.what();
    }
  }
  EXPECT_THROW(parse_relay_endpoints(""), std::invalid_argument);
}

}  // namespace
}  // namespace torchwan::relay
