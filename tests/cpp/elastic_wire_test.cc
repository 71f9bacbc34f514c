// Membership wire format: round trips, and one test per rejection reason.
#include <gtest/gtest.h>

#include <cstring>
#include <random>

#include "base/byte_io.h"
#include "elastic/errors.h"
#include "elastic/membership_wire.h"

namespace torchwan::elastic {
namespace {

const uint64_t kJob = job_hash("job-1");

std::vector<uint8_t> heartbeat_frame() {
  return encode_message(MessageType::kHeartbeat, kJob, 7, 3,
                        encode_payload(MemberRef{"node-a", 42}));
}

// Decodes and returns the kind of the WireError thrown; fails the test when nothing is thrown.
template <typename Fn>
WireErrorKind rejection(Fn&& fn) {
  try {
    fn();
  } catch (const WireError& error) {
    EXPECT_NE(std::string(error.what()), "");
    return error.kind();
  }
  ADD_FAILURE() << "no WireError thrown";
  return WireErrorKind::kTrailingBytes;
}

void put_u32(std::vector<uint8_t>& frame, size_t offset, uint32_t value) {
  for (int i = 0; i < 4; ++i) frame[offset + i] = static_cast<uint8_t>(value >> (8 * i));
}

TEST(ElasticWire, HeaderRoundTrip) {
  const auto frame = heartbeat_frame();
  const Message message = decode_message(frame, kJob);
  EXPECT_EQ(message.header.type, MessageType::kHeartbeat);
  EXPECT_EQ(message.header.job, kJob);
  EXPECT_EQ(message.header.epoch, 7u);
  EXPECT_EQ(message.header.sequence, 3u);
  EXPECT_EQ(message.header.payload_length, frame.size() - kHeaderBytes);
  const MemberRef ref = decode_payload<MemberRef>(message.payload);
  EXPECT_EQ(ref.name, "node-a");
  EXPECT_EQ(ref.incarnation, 42u);
}

TEST(ElasticWire, AnyJobAcceptedWithoutExpectation) {
  EXPECT_NO_THROW(decode_message(heartbeat_frame(), std::nullopt));
}

TEST(ElasticWire, RegisterRoundTrip) {
  RegisterPayload in;
  in.job_id = "job-1";
  in.member = MemberInfo{"node-a", "10.0.0.1:5000", "eu-west", {"cuda", "ucx"}};
  in.incarnation = 0xDEADBEEFCAFEull;
  in.last_epoch = 12;
  in.last_members = {"node-a", "node-b"};
  const RegisterPayload out = decode_payload<RegisterPayload>(encode_payload(in));
  EXPECT_EQ(out.job_id, in.job_id);
  EXPECT_EQ(out.member, in.member);
  EXPECT_EQ(out.incarnation, in.incarnation);
  EXPECT_EQ(out.last_epoch, in.last_epoch);
  EXPECT_EQ(out.last_members, in.last_members);
}

TEST(ElasticWire, EpochStatusPeerLostReasonRoundTrip) {
  EpochPayload epoch{9, 2, {{"a", "x:1", "r1", {}}, {"b", "y:2", "", {"cap"}}}};
  const EpochPayload epoch_out = decode_payload<EpochPayload>(encode_payload(epoch));
  EXPECT_EQ(epoch_out.epoch, 9u);
  EXPECT_EQ(epoch_out.num_waiting, 2u);
  EXPECT_EQ(epoch_out.members, epoch.members);

  const StatusPayload status =
      decode_payload<StatusPayload>(encode_payload(StatusPayload{MemberState::kRecovering, 5, 1}));
  EXPECT_EQ(status.state, MemberState::kRecovering);
  EXPECT_EQ(status.epoch, 5u);
  EXPECT_EQ(status.num_waiting, 1u);

  const PeerLostPayload lost = decode_payload<PeerLostPayload>(
      encode_payload(PeerLostPayload{{"a", 1}, "b", "connection reset"}));
  EXPECT_EQ(lost.reporter.name, "a");
  EXPECT_EQ(lost.peer, "b");
  EXPECT_EQ(lost.reason, "connection reset");

  EXPECT_EQ(decode_payload<ReasonPayload>(encode_payload(ReasonPayload{"quorum lost"})).reason,
            "quorum lost");
}

TEST(ElasticWire, RejectsFrameShorterThanHeader) {
  auto frame = heartbeat_frame();
  frame.resize(kHeaderBytes - 1);
  EXPECT_EQ(rejection([&] { decode_message(frame, kJob); }), WireErrorKind::kTruncated);
  EXPECT_EQ(rejection([&] { decode_message({}, kJob); }), WireErrorKind::kTruncated);
}

TEST(ElasticWire, RejectsBadMagic) {
  auto frame = heartbeat_frame();
  frame[0] ^= 0xFF;
  EXPECT_EQ(rejection([&] { decode_message(frame, kJob); }), WireErrorKind::kBadMagic);
}

TEST(ElasticWire, RejectsOtherVersion) {
  auto frame = heartbeat_frame();
  frame[4] = 2;
  EXPECT_EQ(rejection([&] { decode_message(frame, kJob); }), WireErrorKind::kBadVersion);
}

TEST(ElasticWire, RejectsUnknownType) {
  for (const uint8_t type : {0, 6, 15, 23, 255}) {
    auto frame = heartbeat_frame();
    frame[6] = type;
    EXPECT_EQ(rejection([&] { decode_message(frame, kJob); }), WireErrorKind::kBadType)
        << "type " << int{type};
  }
}

TEST(ElasticWire, RejectsWrongJob) {
  EXPECT_EQ(rejection([&] { decode_message(heartbeat_frame(), job_hash("job-2")); }),
            WireErrorKind::kWrongJob);
}

TEST(ElasticWire, RejectsOversizeLengthBeforeReadingPayload) {
  auto frame = heartbeat_frame();
  put_u32(frame, 32, static_cast<uint32_t>(kMaxPayloadBytes + 1));
  EXPECT_EQ(rejection([&] { decode_message(frame, kJob); }), WireErrorKind::kOversize);
  put_u32(frame, 32, 0xFFFFFFFFu);
  EXPECT_EQ(rejection([&] { decode_message(frame, kJob); }), WireErrorKind::kOversize);
}

TEST(ElasticWire, RefusesToEncodeOversizePayload) {
  const std::vector<uint8_t> payload(kMaxPayloadBytes + 1);
  EXPECT_EQ(rejection([&] { encode_message(MessageType::kEpoch, kJob, 1, 1, payload); }),
            WireErrorKind::kOversize);
}

TEST(ElasticWire, RejectsTruncatedPayload) {
  auto frame = heartbeat_frame();
  frame.pop_back();
  EXPECT_EQ(rejection([&] { decode_message(frame, kJob); }), WireErrorKind::kTruncated);
}

TEST(ElasticWire, RejectsExtraBytesAfterPayload) {
  auto frame = heartbeat_frame();
  frame.push_back(0);
  EXPECT_EQ(rejection([&] { decode_message(frame, kJob); }), WireErrorKind::kLengthMismatch);
}

TEST(ElasticWire, RejectsCorruptedPayload) {
  auto frame = heartbeat_frame();
  frame.back() ^= 0x01;
  EXPECT_EQ(rejection([&] { decode_message(frame, kJob); }), WireErrorKind::kBadChecksum);
}

TEST(ElasticWire, RejectsStringRunningPastTheEnd) {
  base::ByteWriter writer;
  writer.put<uint32_t>(1000);  // name length, but only 3 bytes follow
  writer.put_bytes("abc", 3);
  EXPECT_EQ(rejection([&] { decode_payload<MemberRef>(writer.bytes()); }),
            WireErrorKind::kMalformedPayload);
}

TEST(ElasticWire, RejectsListCountLargerThanItsBytes) {
  base::ByteWriter writer;
  writer.put<uint64_t>(1);           // epoch
  writer.put<uint32_t>(0);           // waiting
  writer.put<uint32_t>(0x7FFFFFFF);  // member count: must not be trusted for an allocation
  EXPECT_EQ(rejection([&] { decode_payload<EpochPayload>(writer.bytes()); }),
            WireErrorKind::kMalformedPayload);
}

TEST(ElasticWire, RejectsTrailingBytesInPayload) {
  auto payload = encode_payload(MemberRef{"node-a", 1});
  payload.push_back(7);
  EXPECT_EQ(rejection([&] { decode_payload<MemberRef>(payload); }), WireErrorKind::kTrailingBytes);
  EXPECT_EQ(rejection([&] { expect_empty(payload); }), WireErrorKind::kTrailingBytes);
}

TEST(ElasticWire, RejectsEmptyAndHugeNames) {
  EXPECT_EQ(rejection([&] {
              decode_payload<MemberRef>(encode_payload(MemberRef{"", 1}));
            }),
            WireErrorKind::kMalformedPayload);
  const std::string huge(kMaxNameBytes + 1, 'x');
  EXPECT_EQ(rejection([&] {
              decode_payload<MemberRef>(encode_payload(MemberRef{huge, 1}));
            }),
            WireErrorKind::kMalformedPayload);
}

TEST(ElasticWire, RejectsUnknownMemberState) {
  auto payload = encode_payload(StatusPayload{MemberState::kActive, 1, 0});
  payload[0] = 99;
  EXPECT_EQ(rejection([&] { decode_payload<StatusPayload>(payload); }),
            WireErrorKind::kMalformedPayload);
}

TEST(ElasticWire, RandomMutationsNeverEscapeAsAnythingButWireError) {
  RegisterPayload registration;
  registration.job_id = "job-1";
  registration.member = MemberInfo{"node-a", "10.0.0.1:5000", "eu", {"cuda"}};
  registration.last_members = {"node-a", "node-b", "node-c"};
  const auto valid =
      encode_message(MessageType::kRegister, kJob, 3, 1, encode_payload(registration));
  std::mt19937 random(1234);
  int accepted = 0;
  for (int trial = 0; trial < 20000; ++trial) {
    auto frame = valid;
    const int edits = 1 + static_cast<int>(random() % 4);
    for (int e = 0; e < edits; ++e) {
      switch (random() % 3) {
        case 0:
          frame[random() % frame.size()] = static_cast<uint8_t>(random());
          break;
        case 1:
          frame.resize(random() % (frame.size() + 1));
          break;
        default:
          frame.push_back(static_cast<uint8_t>(random()));
          break;
      }
      if (frame.empty()) break;
    }
    // Most mutations die on the checksum; fix it up so the payload decoder is exercised too.
    if (frame.size() >= kHeaderBytes && random() % 2 == 0) {
      const std::span<const uint8_t> payload(frame.data() + kHeaderBytes,
                                             frame.size() - kHeaderBytes);
      put_u32(frame, 32, static_cast<uint32_t>(payload.size()));
      put_u32(frame, 36, payload_checksum(payload));
    }
    try {
      const Message message = decode_message(frame, kJob);
      if (message.header.type == MessageType::kRegister)
        decode_payload<RegisterPayload>(message.payload);
      ++accepted;
    } catch (const WireError&) {
    }
  }
  EXPECT_LT(accepted, 20000);
}

}  // namespace
}  // namespace torchwan::elastic
