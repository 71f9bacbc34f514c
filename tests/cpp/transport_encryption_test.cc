// Tests of data-plane encryption (transport/secure/encrypted_transport.h) on real transports over
// loopback: messages of every shape arrive intact under both ciphers on both transports, what the
// wire carries is ciphertext 24 bytes longer, forged, tampered, replayed and cross-group messages
// fail their receive naming the sender and leave the caller's buffer as it was, and a rank with
// another setting (or without a secret) is refused at group creation.
#include <gtest/gtest.h>

#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <optional>
#include <set>
#include <string>
#include <tuple>
#include <vector>

#include "test_support.h"
#include "transport/secure/data_auth.h"
#include "transport/secure/encrypted_transport.h"
#include "transport/secure/job_secret.h"
#include "transport/secure/message_cipher.h"
#include "transport/secure/replay_window.h"
#include "transport/transport.h"

namespace torchwan {
namespace {

using namespace std::chrono_literals;
using testing::connect_each;
using testing::loopback_options;
using testing::pattern_bytes;
using testing::run_on_threads;
using testing::SecretDir;
using testing::take_transports;
using transport::Cipher;
using transport::EncryptedTransport;
using transport::ErrorKind;
using transport::kSealOverheadBytes;
using transport::Transport;
using transport::TransportError;
using transport::TransportOptions;
namespace fs = std::filesystem;

// What a receive buffer holds before the receive; a failed receive must leave it so.
constexpr uint8_t kUntouched = 0xEE;

bool untouched(const std::vector<uint8_t>& buffer) {
  return std::all_of(buffer.begin(), buffer.end(), [](uint8_t b) { return b == kUntouched; });
}

bool contains(const std::string& text, const std::string& part) {
  return text.find(part) != std::string::npos;
}

std::vector<std::unique_ptr<Transport>> connect(const TransportOptions& options, int size) {
  transport::MemoryStore store;
  auto outcomes = connect_each(
      size, [&](int) { return options; }, store);
  return take_transports(outcomes);
}

EncryptedTransport& encrypted(const std::unique_ptr<Transport>& transport) {
  auto* result = dynamic_cast<EncryptedTransport*>(transport.get());
  if (result == nullptr) throw std::runtime_error(transport->name() + " is not encrypted");
  return *result;
}

// Waits for `request` and returns its TransportError (fails the test when it succeeded).
TransportError failure_of(transport::Request& request) {
  try {
    request.wait(20s);
  } catch (const TransportError& error) {
    return error;
  }
  ADD_FAILURE() << "the receive succeeded";
  return TransportError(ErrorKind::kInternal, "no error");
}

// (transport, cipher)
class TransportEncryption : public ::testing::TestWithParam<std::tuple<std::string, std::string>> {
 protected:
  void SetUp() override {
    if (std::get<1>(GetParam()) == "aes-256-gcm" && !transport::aes_gcm_available()) {
      GTEST_SKIP() << "this CPU cannot run AES-256-GCM";
    }
  }
  TransportOptions options(int lanes = 2) const {
    TransportOptions result = loopback_options(std::get<0>(GetParam()), lanes);
    result.connect_timeout = 10s;
    result.job_id = "encryption-test";
    result.secret_file = secret_;
    result.encryption = std::get<1>(GetParam());
    return result;
  }
  Cipher expected_cipher() const {
    return std::get<1>(GetParam()) == "aes-256-gcm" ? Cipher::kAes256Gcm
                                                    : Cipher::kChacha20Poly1305;
  }

  SecretDir dir_;
  const std::string secret_ = dir_.create("job.secret");
};

TEST_P(TransportEncryption, RoundTripOfEveryShape) {
  TransportOptions shared = options();
  shared.stripe_min_bytes = 64 << 10;
  auto ranks = connect(shared, 3);
  for (const auto& rank : ranks) {
    EXPECT_EQ(encrypted(rank).cipher(), expected_cipher());
    EXPECT_TRUE(contains(rank->name(), std::get<1>(GetParam()))) << rank->name();
  }
  // Empty, small, striped over both lanes, and larger than one chunk.
  for (const size_t bytes : {size_t{0}, size_t{100}, size_t{3} << 20, size_t{9} << 20}) {
    SCOPED_TRACE(bytes);
    run_on_threads(3, [&](int rank) {
      Transport& self = *ranks[static_cast<size_t>(rank)];
      std::vector<std::vector<uint8_t>> out(3), in(3);
      std::vector<std::shared_ptr<transport::Request>> requests;
      for (int peer = 0; peer < 3; ++peer) {
        if (peer == rank) continue;
        const auto index = static_cast<size_t>(peer);
        out[index] = pattern_bytes(bytes, static_cast<uint32_t>(rank * 10 + peer));
        in[index].assign(bytes, 0);
        requests.push_back(self.irecv(peer, 5, in[index].data(), bytes));
        requests.push_back(self.isend(peer, 5, out[index].data(), bytes));
      }
      for (auto& request : requests) request->wait(30s);
      for (int peer = 0; peer < 3; ++peer) {
        if (peer == rank) continue;
        if (in[static_cast<size_t>(peer)] !=
            pattern_bytes(bytes, static_cast<uint32_t>(peer * 10 + rank))) {
          throw std::runtime_error("corrupted message from rank " + std::to_string(peer));
        }
      }
    });
  }
}

TEST_P(TransportEncryption, AnySourceReceivesNameTheSenderAndDecrypt) {
  TransportOptions shared = options();
  shared.stripe_min_bytes = 64 << 10;
  auto ranks = connect(shared, 3);
  for (const size_t bytes : {size_t{64}, size_t{2} << 20}) {
    SCOPED_TRACE(bytes);
    run_on_threads(3, [&](int rank) {
      Transport& self = *ranks[static_cast<size_t>(rank)];
      if (rank != 0) {
        const auto out = pattern_bytes(bytes, static_cast<uint32_t>(rank));
        self.isend(0, 9, out.data(), bytes)->wait(30s);
        return;
      }
      std::vector<std::vector<uint8_t>> in(2, std::vector<uint8_t>(bytes));
      auto first = self.irecv_any(9, in[0].data(), bytes);
      auto second = self.irecv_any(9, in[1].data(), bytes);
      first->wait(30s);
      second->wait(30s);
      EXPECT_EQ(first->peer(), transport::kAnySource);
      const std::set<int> sources{first->source(), second->source()};
      EXPECT_EQ(sources, (std::set<int>{1, 2}));
      EXPECT_EQ(in[0], pattern_bytes(bytes, static_cast<uint32_t>(first->source())));
      EXPECT_EQ(in[1], pattern_bytes(bytes, static_cast<uint32_t>(second->source())));
    });
  }
}

TEST_P(TransportEncryption, MessagesOnManyTagsMayBeReceivedInAnyOrder) {
  // Counters are per sender, so receiving in reverse order must not look like a replay.
  auto ranks = connect(options(), 2);
  constexpr int kMessages = 300;
  std::vector<std::vector<uint8_t>> out, in;
  for (int i = 0; i < kMessages; ++i) {
    out.push_back(pattern_bytes(32, static_cast<uint32_t>(i)));
    in.emplace_back(32, 0);
  }
  std::vector<std::shared_ptr<transport::Request>> sends;
  for (int i = 0; i < kMessages; ++i) {
    sends.push_back(ranks[0]->isend(1, static_cast<transport::Tag>(1000 + i), out[i].data(), 32));
  }
  for (int i = kMessages - 1; i >= 0; --i) {
    ranks[1]->irecv(0, static_cast<transport::Tag>(1000 + i), in[i].data(), 32)->wait(20s);
  }
  for (auto& send : sends) send->wait(20s);
  EXPECT_EQ(in, out);
}

TEST_P(TransportEncryption, WireCarriesCiphertextWithTheOverhead) {
  auto ranks = connect(options(), 2);
  constexpr size_t kBytes = 1 << 16;
  const auto plaintext = pattern_bytes(kBytes, 3);
  // Rank 1 reads what its inner transport delivers: the sealed message, exactly 24 bytes longer.
  std::vector<uint8_t> wire(kBytes + kSealOverheadBytes);
  auto raw = encrypted(ranks[1]).inner().irecv(0, 4, wire.data(), wire.size());
  ranks[0]->isend(1, 4, plaintext.data(), kBytes)->wait(20s);
  raw->wait(20s);
  const uint8_t* ciphertext = wire.data() + transport::kSealedHeaderBytes;
  size_t equal = 0;
  for (size_t i = 0; i < kBytes; ++i) equal += ciphertext[i] == plaintext[i] ? 1 : 0;
  EXPECT_LT(equal, kBytes / 64) << "the payload travels in clear";
  EXPECT_EQ(std::search(wire.begin(), wire.end(), plaintext.begin(), plaintext.begin() + 16),
            wire.end());
}

TEST_P(TransportEncryption, ForgedTamperedAndReplayedMessagesFailLeavingTheBufferUntouched) {
  auto ranks = connect(options(), 2);
  Transport& receiver = *ranks[0];
  Transport& sender_inner = encrypted(ranks[1]).inner();
  constexpr size_t kBytes = 4096;
  const auto plaintext = pattern_bytes(kBytes, 11);

  auto expect_rejected = [&](const std::vector<uint8_t>& wire, transport::Tag tag,
                             const std::string& why) {
    std::vector<uint8_t> buffer(kBytes, kUntouched);
    auto receive = receiver.irecv(1, tag, buffer.data(), kBytes);
    sender_inner.isend(0, tag, wire.data(), wire.size())->wait(20s);
    const TransportError error = failure_of(*receive);
    EXPECT_EQ(error.kind(), ErrorKind::kProtocol) << error.what();
    EXPECT_EQ(error.peer(), 1);
    EXPECT_TRUE(contains(error.what(), "message from rank 1 on tag")) << error.what();
    EXPECT_TRUE(contains(error.what(), "failed authentication")) << error.what();
    EXPECT_TRUE(contains(error.what(), why)) << error.what();
    EXPECT_TRUE(untouched(buffer)) << "unauthenticated bytes reached the caller's buffer";
  };

  // Forged: bytes from a rank that has no key, sent around the encryption.
  expect_rejected(pattern_bytes(kBytes + kSealOverheadBytes, 99), 21,
                  "tampered or not from this job");

  // Capture a genuine sealed message (rank 1 to rank 0, tag 22) off rank 0's inner transport and
  // give it back to rank 1, which will resend it raw.
  std::vector<uint8_t> sealed(kBytes + kSealOverheadBytes);
  auto capture = encrypted(ranks[0]).inner().irecv(1, 22, sealed.data(), sealed.size());
  ranks[1]->isend(0, 22, plaintext.data(), kBytes)->wait(20s);
  capture->wait(20s);

  // One flipped bit in the ciphertext, or in the counter, or the right bytes on another tag.
  for (const size_t offset : {transport::kSealedHeaderBytes + 100, size_t{0}}) {
    std::vector<uint8_t> tampered = sealed;
    tampered[offset] ^= 0x01;
    expect_rejected(tampered, 22, "tampered or not from this job");
  }
  expect_rejected(sealed, 23, "tampered or not from this job");

  // The genuine message, relayed unchanged, is accepted once...
  std::vector<uint8_t> buffer(kBytes, kUntouched);
  auto receive = receiver.irecv(1, 22, buffer.data(), kBytes);
  sender_inner.isend(0, 22, sealed.data(), sealed.size())->wait(20s);
  receive->wait(20s);
  EXPECT_EQ(buffer, plaintext);
  // ...and a second copy is a replay.
  expect_rejected(sealed, 22, "replayed");

  // The group keeps working after all of it.
  std::vector<uint8_t> after(kBytes, 0);
  auto again = receiver.irecv(1, 24, after.data(), kBytes);
  ranks[1]->isend(0, 24, plaintext.data(), kBytes)->wait(20s);
  again->wait(20s);
  EXPECT_EQ(after, plaintext);
}

TEST_P(TransportEncryption, CiphertextOfAnotherGroupNeverDecrypts) {
  // Same secret, job, epoch and ranks: only the groups' fresh nonces differ, and so their keys.
  auto first = connect(options(), 2);
  auto second = connect(options(), 2);
  constexpr size_t kBytes = 1024;
  const auto plaintext = pattern_bytes(kBytes, 5);
  std::vector<uint8_t> sealed(kBytes + kSealOverheadBytes);
  auto capture = encrypted(first[0]).inner().irecv(1, 3, sealed.data(), sealed.size());
  first[1]->isend(0, 3, plaintext.data(), kBytes)->wait(20s);
  capture->wait(20s);

  std::vector<uint8_t> buffer(kBytes, kUntouched);
  auto receive = second[0]->irecv(1, 3, buffer.data(), kBytes);
  encrypted(second[1]).inner().isend(0, 3, sealed.data(), sealed.size())->wait(20s);
  const TransportError error = failure_of(*receive);
  EXPECT_TRUE(contains(error.what(), "tampered or not from this job")) << error.what();
  EXPECT_TRUE(untouched(buffer));
}

TEST_P(TransportEncryption, CancelAbortAndSizeMismatchKeepTheirMeaning) {
  auto ranks = connect(options(), 2);
  std::vector<uint8_t> buffer(64, kUntouched);
  auto canceled = ranks[0]->irecv(1, 30, buffer.data(), buffer.size());
  canceled->cancel();
  EXPECT_EQ(failure_of(*canceled).kind(), ErrorKind::kCanceled);

  std::vector<uint8_t> small(32), large(64);
  auto mismatched = ranks[0]->irecv(1, 31, large.data(), large.size());
  ranks[1]->isend(0, 31, small.data(), small.size());
  const TransportError mismatch = failure_of(*mismatched);
  EXPECT_EQ(mismatch.kind(), ErrorKind::kSizeMismatch) << mismatch.what();
  EXPECT_TRUE(contains(mismatch.what(), "encryption adds")) << mismatch.what();

  auto pending = ranks[0]->irecv(1, 32, buffer.data(), buffer.size());
  ranks[0]->abort("test shutdown");
  EXPECT_EQ(failure_of(*pending).kind(), ErrorKind::kAborted);
  EXPECT_TRUE(untouched(buffer));
}

INSTANTIATE_TEST_SUITE_P(TransportsAndCiphers, TransportEncryption,
                         ::testing::Combine(::testing::ValuesIn(testing::transport_kinds()),
                                            ::testing::Values("aes-256-gcm", "chacha20-poly1305")),
                         [](const auto& info) {
                           std::string name =
                               std::get<0>(info.param) + "_" + std::get<1>(info.param);
                           std::replace(name.begin(), name.end(), '-', '_');
                           return name;
                         });

// Group creation: settings that cannot work are refused on every rank, naming the culprit.
class EncryptionSetup : public ::testing::TestWithParam<std::string> {
 protected:
  TransportOptions options(const std::string& encryption) const {
    TransportOptions result = loopback_options(GetParam(), 1);
    result.connect_timeout = 5s;
    result.secret_file = secret_;
    result.encryption = encryption;
    return result;
  }
  SecretDir dir_;
  const std::string secret_ = dir_.create("job.secret");
};

TEST_P(EncryptionSetup, AnotherSettingOnOneRankIsNamedOnEveryRank) {
  for (const auto& [odd, others] : {std::pair<std::string, std::string>{"none", "on"},
                                    {"chacha20-poly1305", "on"},
                                    {"on", "none"}}) {
    SCOPED_TRACE(odd + " among " + others);
    transport::MemoryStore store;
    const auto start = std::chrono::steady_clock::now();
    auto outcomes = connect_each(
        3, [&](int rank) { return options(rank == 2 ? odd : others); }, store);
    EXPECT_LT(std::chrono::steady_clock::now() - start, 5s);
    for (size_t rank = 0; rank < outcomes.size(); ++rank) {
      ASSERT_TRUE(outcomes[rank].error) << "rank " << rank << " connected";
      const std::string what = outcomes[rank].error->what();
      EXPECT_EQ(outcomes[rank].error->kind(), ErrorKind::kBootstrap) << what;
      EXPECT_TRUE(contains(what, "rank(s) [2]")) << what;
      EXPECT_TRUE(contains(what, "encryption " + odd)) << what;
      EXPECT_TRUE(contains(what, "TORCHWAN_ENCRYPTION")) << what;
      EXPECT_EQ(contains(what, "this rank is one of them"), rank == 2) << what;
    }
  }
}

TEST_P(EncryptionSetup, OnResolvesToTheSameCipherEverywhere) {
  transport::MemoryStore store;
  auto outcomes = connect_each(
      3, [&](int) { return options("on"); }, store);
  const Cipher expected =
      transport::aes_gcm_available() ? Cipher::kAes256Gcm : Cipher::kChacha20Poly1305;
  for (auto& outcome : outcomes) {
    ASSERT_FALSE(outcome.error) << outcome.error->what();
    EXPECT_EQ(encrypted(outcome.transport).cipher(), expected);
  }
}

TEST_P(EncryptionSetup, EncryptionWithoutASecretIsRefused) {
  TransportOptions without = options("on");
  without.secret_file.clear();
  transport::MemoryStore store;
  const TransportError error = testing::creation_error(without, store, 0, 2);
  EXPECT_EQ(error.kind(), ErrorKind::kInvalidArgument);
  EXPECT_TRUE(contains(error.what(), "needs the job secret")) << error.what();
  TransportOptions unknown = options("rot13");
  EXPECT_THROW(unknown.validate(), std::invalid_argument);
  EXPECT_NO_THROW(options("on").validate());
}

INSTANTIATE_TEST_SUITE_P(Transports, EncryptionSetup,
                         ::testing::ValuesIn(testing::transport_kinds()));

// The pieces on their own.
TEST(ReplayWindow, AcceptsEachCounterOnceInAnyOrderWithinTheSpan) {
  transport::ReplayWindow window(128);
  using Verdict = transport::ReplayWindow::Verdict;
  EXPECT_EQ(window.accept(5), Verdict::kFresh);
  EXPECT_EQ(window.accept(5), Verdict::kReplayed);
  for (uint64_t counter = 0; counter < 64; ++counter) {
    if (counter != 5) {
      EXPECT_EQ(window.accept(counter), Verdict::kFresh) << counter;
    }
  }
  EXPECT_EQ(window.base(), 64u);  // a full word of used counters is dropped
  EXPECT_EQ(window.words(), 0u);
  EXPECT_EQ(window.accept(3), Verdict::kTooOld);
  // Far ahead: the window slides and gives up on what it passed.
  EXPECT_EQ(window.accept(1000), Verdict::kFresh);
  EXPECT_LE(window.words(), 2u);
  EXPECT_EQ(window.accept(70), Verdict::kTooOld);
  EXPECT_EQ(window.accept(1000), Verdict::kReplayed);
  EXPECT_EQ(window.accept(999), Verdict::kFresh);
}

TEST(SessionKey, DependsOnEveryNonceTheCipherAndTheEpoch) {
  const std::array<uint8_t, security::kSecretBytes> secret_bytes{1, 2, 3};
  const auto secret = security::JobSecret::from_bytes(secret_bytes);
  std::vector<transport::AuthRecord> records(3);
  for (size_t i = 0; i < records.size(); ++i) records[i].nonce.fill(static_cast<uint8_t>(i));
  auto key_of = [&](uint64_t epoch, Cipher cipher, const std::vector<transport::AuthRecord>& r) {
    const auto key = transport::derive_session_key(secret, "job", epoch, cipher, r);
    return std::vector<uint8_t>(key.data(), key.data() + key.size());
  };
  const auto base = key_of(0, Cipher::kAes256Gcm, records);
  EXPECT_EQ(base, key_of(0, Cipher::kAes256Gcm, records));
  EXPECT_NE(base, key_of(1, Cipher::kAes256Gcm, records));
  EXPECT_NE(base, key_of(0, Cipher::kChacha20Poly1305, records));
  auto changed = records;
  changed[2].nonce[15] ^= 1;
  EXPECT_NE(base, key_of(0, Cipher::kAes256Gcm, changed));
}

TEST(AuthRecord, CarriesTheEncryptionSettingAndRefusesVersionOne) {
  transport::AuthRecord record{.has_secret = true, .fingerprint = "0123abcd"};
  record.encryption = transport::EncryptionSetting::kChacha20Poly1305;
  record.has_aes = true;
  std::string why;
  const auto bytes = transport::encode_auth_record(record);
  const auto decoded = transport::decode_auth_record(bytes, why);
  ASSERT_TRUE(decoded) << why;
  EXPECT_EQ(decoded->encryption, transport::EncryptionSetting::kChacha20Poly1305);
  EXPECT_TRUE(decoded->has_aes);

  auto version1 = bytes;
  version1[4] = 1;
  version1.erase(version1.begin() + 36, version1.begin() + 40);
  EXPECT_FALSE(transport::decode_auth_record(version1, why));
  EXPECT_TRUE(contains(why, "mixed torchwan versions")) << why;

  auto unknown = bytes;
  unknown[36] = 9;  // the encryption setting: no such value
  EXPECT_FALSE(transport::decode_auth_record(unknown, why));
  auto without_secret = transport::encode_auth_record(
      {.has_secret = false, .encryption = transport::EncryptionSetting::kOn});
  EXPECT_FALSE(transport::decode_auth_record(without_secret, why));
  EXPECT_TRUE(contains(why, "without a job secret")) << why;
}

}  // namespace
}  // namespace torchwan
