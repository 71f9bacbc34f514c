// Control-plane authentication against a real coordinator and members over loopback: the right
// secret joins; a wrong or missing one fails fast with a clear error while the coordinator keeps
// serving its members; a key not derived from the secret is refused by the ZAP handler; a member of
// another protocol version gets a reason.
#include <gtest/gtest.h>
#include <sodium.h>

#include <array>
#include <memory>
#include <string>
#include <thread>
#include <zmq.hpp>

#include "elastic/coordinator.h"
#include "elastic/errors.h"
#include "elastic/member.h"
#include "elastic/membership_wire.h"
#include "transport/secure/job_secret.h"

namespace torchwan::elastic {
namespace {

using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;

constexpr auto kWait = 5000ms;
constexpr auto kCoordinatorTimeout = 1000ms;
// A refused member gives up on its own within about one coordinator timeout; the slack is for a
// loaded CI host, and the bound is still far below kWait, where a caller would give up instead.
constexpr auto kRefusedWithin = kCoordinatorTimeout + 1500ms;

security::JobSecret secret_of(uint8_t fill) {
  std::array<uint8_t, security::kSecretBytes> bytes{};
  bytes.fill(fill);
  bytes[0] = 0x5A;
  return security::JobSecret::from_bytes(bytes);
}

std::string hex_of(uint8_t fill) {
  std::array<uint8_t, security::kSecretBytes> bytes{};
  bytes.fill(fill);
  bytes[0] = 0x5A;
  std::string hex(bytes.size() * 2 + 1, '\0');
  sodium_bin2hex(hex.data(), hex.size(), bytes.data(), bytes.size());
  hex.pop_back();
  return hex;
}

CoordinatorOptions coordinator_options(std::optional<security::JobSecret> secret) {
  CoordinatorOptions options;
  options.host = "127.0.0.1";
  options.port = 0;
  options.job_id = "job";
  options.heartbeat_timeout = 1000ms;
  options.min_members = 1;
  options.secret = std::move(secret);
  return options;
}

MemberOptions member_options(const std::string& endpoint, const std::string& name,
                             std::optional<security::JobSecret> secret) {
  MemberOptions options;
  options.coordinator = endpoint;
  options.job_id = "job";
  options.name = name;
  options.address = name + ".example:7000";
  options.heartbeat_interval = 100ms;
  options.coordinator_timeout = kCoordinatorTimeout;
  options.secret = std::move(secret);
  return options;
}

// Runs wait_for_epoch on a member that must not get in; returns the error and how long it took.
std::pair<ElasticError, Clock::duration> expect_refused(Member& member) {
  const auto start = Clock::now();
  try {
    member.wait_for_epoch(0, kWait);
  } catch (const ElasticError& error) {
    return {error, Clock::now() - start};
  }
  ADD_FAILURE() << "the member was not refused";
  return {ElasticError(ElasticErrorKind::kStopped, ""), Clock::now() - start};
}

// `member` is refused for its security within kRefusedWithin with an error containing `why`, and
// the coordinator admitted nobody. Returns the error's text.
std::string expect_authentication_refused(Member& member, Coordinator& coordinator,
                                          const std::string& why) {
  const auto [error, took] = expect_refused(member);
  EXPECT_EQ(error.kind(), ElasticErrorKind::kAuthentication) << error.what();
  EXPECT_LE(took, kRefusedWithin);
  EXPECT_NE(std::string(error.what()).find(why), std::string::npos) << error.what();
  EXPECT_TRUE(coordinator.snapshot().members.empty());
  return error.what();
}

TEST(ElasticSecurity, RightSecretJoins) {
  Coordinator coordinator(coordinator_options(secret_of(1)));
  coordinator.start();
  Member a(member_options(coordinator.endpoint(), "a", secret_of(1)));
  const auto view = a.wait_for_epoch(0, kWait);
  ASSERT_TRUE(view);
  EXPECT_EQ(view->world_size(), 1);
  EXPECT_EQ(coordinator.refused_connections(), 0u);
}

TEST(ElasticSecurity, WrongSecretFailsClearlyAndCoordinatorKeepsServing) {
  Coordinator coordinator(coordinator_options(secret_of(1)));
  coordinator.start();
  Member good(member_options(coordinator.endpoint(), "good", secret_of(1)));
  ASSERT_TRUE(good.wait_for_epoch(0, kWait));

  Member intruder(member_options(coordinator.endpoint(), "intruder", secret_of(2)));
  const auto [error, took] = expect_refused(intruder);
  EXPECT_EQ(error.kind(), ElasticErrorKind::kAuthentication) << error.what();
  EXPECT_LE(took, kRefusedWithin);
  const std::string message = error.what();
  EXPECT_NE(message.find(coordinator.endpoint()), std::string::npos) << message;
  EXPECT_NE(message.find("authentication failed or wrong secret"), std::string::npos) << message;
  EXPECT_NE(message.find(secret_of(2).fingerprint()), std::string::npos) << message;
  EXPECT_EQ(message.find(hex_of(2)), std::string::npos);
  EXPECT_EQ(message.find(hex_of(1)), std::string::npos);
  intruder.close();

  // The coordinator still serves: the good member stays, and another one joins.
  Member late(member_options(coordinator.endpoint(), "late", secret_of(1)));
  const auto deadline = Clock::now() + kWait;
  while (coordinator.snapshot().waiting.empty() && Clock::now() < deadline) {
    std::this_thread::sleep_for(10ms);
  }
  good.request_new_epoch();  // a step boundary: the waiting joiner is admitted
  const auto view = late.wait_for_epoch(0, kWait);
  ASSERT_TRUE(view);
  EXPECT_EQ(view->world_size(), 2);
  const auto snapshot = coordinator.snapshot();
  EXPECT_EQ(snapshot.members.size(), 2u);
}

TEST(ElasticSecurity, MemberWithoutSecretIsRefused) {
  Coordinator coordinator(coordinator_options(secret_of(1)));
  coordinator.start();
  Member open(member_options(coordinator.endpoint(), "open", std::nullopt));
  expect_authentication_refused(open, coordinator, "requires the job secret");
}

TEST(ElasticSecurity, MemberWithSecretRefusesOpenCoordinator) {
  Coordinator coordinator(coordinator_options(std::nullopt));
  coordinator.start();
  Member member(member_options(coordinator.endpoint(), "careful", secret_of(1)));
  expect_authentication_refused(member, coordinator, "coordinator without --secret-file");
}

// A client that knows the server key (so the handshake's cryptography succeeds) but not the
// secret: only the ZAP handler stands in its way.
TEST(ElasticSecurity, ZapRefusesKeysNotDerivedFromTheSecret) {
  Coordinator coordinator(coordinator_options(secret_of(1)));
  coordinator.start();
  std::array<char, 41> public_key{};
  std::array<char, 41> secret_key{};
  ASSERT_EQ(zmq_curve_keypair(public_key.data(), secret_key.data()), 0);
  ::zmq::context_t context(1);
  ::zmq::socket_t dealer(context, ::zmq::socket_type::dealer);
  dealer.set(::zmq::sockopt::linger, 0);
  dealer.set(::zmq::sockopt::curve_serverkey, secret_of(1).curve_keys().public_key);
  dealer.set(::zmq::sockopt::curve_publickey, std::string(public_key.data()));
  dealer.set(::zmq::sockopt::curve_secretkey, std::string(secret_key.data()));
  dealer.connect(coordinator.endpoint());
  const auto deadline = Clock::now() + kWait;
  while (coordinator.refused_connections() == 0 && Clock::now() < deadline) {
    std::this_thread::sleep_for(10ms);
  }
  EXPECT_GE(coordinator.refused_connections(), 1u);

  Member good(member_options(coordinator.endpoint(), "good", secret_of(1)));
  EXPECT_TRUE(good.wait_for_epoch(0, kWait));
}

TEST(ElasticSecurity, OldProtocolVersionGetsAReason) {
  Coordinator coordinator(coordinator_options(std::nullopt));
  coordinator.start();
  ::zmq::context_t context(1);
  ::zmq::socket_t dealer(context, ::zmq::socket_type::dealer);
  dealer.set(::zmq::sockopt::linger, 0);
  dealer.set(::zmq::sockopt::rcvtimeo, static_cast<int>(kWait.count()));
  dealer.connect(coordinator.endpoint());
  auto frame = encode_message(MessageType::kHeartbeat, job_hash("job"), 0, 1,
                              encode_payload(MemberRef{"old", 1}));
  frame[4] = 0;  // version 0: an older torchwan
  frame[5] = 0;
  dealer.send(::zmq::buffer(frame), ::zmq::send_flags::none);
  ::zmq::message_t reply;
  ASSERT_TRUE(dealer.recv(reply, ::zmq::recv_flags::none));
  const Message message =
      decode_message({static_cast<const uint8_t*>(reply.data()), reply.size()}, job_hash("job"));
  ASSERT_EQ(message.header.type, MessageType::kReject);
  const std::string reason = decode_payload<ReasonPayload>(message.payload).reason;
  EXPECT_NE(reason.find("protocol version 0"), std::string::npos) << reason;
  EXPECT_EQ(coordinator.snapshot().rejected_frames, 1u);
}

}  // namespace
}  // namespace torchwan::elastic
