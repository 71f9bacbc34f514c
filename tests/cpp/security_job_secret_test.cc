// The job secret file and what is derived from it, checked against independent computations
// (libzmq's own CURVE key derivation, the file's permission rules) rather than against itself.
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zmq.h>

#include <filesystem>
#include <fstream>
#include <string>

#include "thrown_message.h"
#include "transport/secure/job_secret.h"

namespace torchwan::security {
namespace {

class SecretFile : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = std::filesystem::temp_directory_path() /
           ("torchwan-secret-" + std::to_string(::getpid()) + "-" +
            ::testing::UnitTest::GetInstance()->current_test_info()->name());
    std::filesystem::create_directories(dir_);
  }
  void TearDown() override { std::filesystem::remove_all(dir_); }
  std::filesystem::path dir_;
};

TEST_F(SecretFile, CreatedFileIsPrivateAndLoadsToTheSameSecret) {
  const auto path = dir_ / "job.key";
  const JobSecret created = JobSecret::create_file(path);
  struct stat info {};
  ASSERT_EQ(::stat(path.c_str(), &info), 0);
  EXPECT_EQ(info.st_mode & 0777, 0600u);
  const JobSecret loaded = JobSecret::load_file(path);
  EXPECT_EQ(created.fingerprint(), loaded.fingerprint());
  const uint8_t message[] = {1, 2, 3};
  EXPECT_TRUE(loaded.verify("label", message, created.prove("label", message)));
}

TEST_F(SecretFile, RefusesToOverwrite) {
  const auto path = dir_ / "job.key";
  JobSecret::create_file(path);
  EXPECT_NE(testing::thrown_message([&] { JobSecret::create_file(path); }).find("cannot create"),
            std::string::npos);
}

TEST_F(SecretFile, GroupReadableFileIsRejected) {
  const auto path = dir_ / "job.key";
  JobSecret::create_file(path);
  ::chmod(path.c_str(), 0640);
  const std::string what = testing::thrown_message([&] { JobSecret::load_file(path); });
  EXPECT_NE(what.find("chmod 600"), std::string::npos) << what;
}

TEST_F(SecretFile, MalformedAndMissingFilesAreNamedWithoutTheirContent) {
  const auto path = dir_ / "bad.key";
  {
    std::ofstream out(path);
    out << "deadbeef-not-a-secret\n";
  }
  ::chmod(path.c_str(), 0600);
  const std::string malformed = testing::thrown_message([&] { JobSecret::load_file(path); });
  EXPECT_NE(malformed.find("malformed"), std::string::npos) << malformed;
  EXPECT_EQ(malformed.find("deadbeef"), std::string::npos) << "content leaked: " << malformed;
  const std::string missing =
      testing::thrown_message([&] { JobSecret::load_file(dir_ / "absent.key"); });
  EXPECT_NE(missing.find("absent.key"), std::string::npos) << missing;
}

TEST(JobSecretProof, DependsOnSecretLabelAndMessage) {
  std::array<uint8_t, kSecretBytes> a{};
  std::array<uint8_t, kSecretBytes> b{};
  b[0] = 1;
  const JobSecret first = JobSecret::from_bytes(a);
  const JobSecret second = JobSecret::from_bytes(b);
  const uint8_t message[] = {9, 9};
  const uint8_t other[] = {9, 8};
  const Proof proof = first.prove("connect", message);
  EXPECT_TRUE(first.verify("connect", message, proof));
  EXPECT_FALSE(second.verify("connect", message, proof));
  EXPECT_FALSE(first.verify("member", message, proof));
  EXPECT_FALSE(first.verify("connect", other, proof));
  EXPECT_NE(first.fingerprint(), second.fingerprint());
}

TEST(JobSecretCurve, KeysMatchLibzmqsDerivationAndDifferPerSecret) {
  std::array<uint8_t, kSecretBytes> bytes{};
  for (size_t i = 0; i < bytes.size(); ++i) bytes[i] = static_cast<uint8_t>(i * 7);
  const CurveKeyPair keys = JobSecret::from_bytes(bytes).curve_keys();
  ASSERT_EQ(keys.public_key.size(), 40u);
  ASSERT_EQ(keys.secret_key.size(), 40u);
  char derived_public[41] = {};
  ASSERT_EQ(zmq_curve_public(derived_public, keys.secret_key.c_str()), 0)
      << "libzmq without CURVE support";
  EXPECT_EQ(keys.public_key, std::string(derived_public));
  bytes[0] ^= 1;
  EXPECT_NE(JobSecret::from_bytes(bytes).curve_keys().public_key, keys.public_key);
}

TEST(JobSecretBytes, WrongLengthIsRejected) {
  const std::array<uint8_t, 5> short_secret{};
  EXPECT_THROW(JobSecret::from_bytes(short_secret), std::invalid_argument);
  EXPECT_NE(random_nonce(), random_nonce());
}

}  // namespace
}  // namespace torchwan::security
