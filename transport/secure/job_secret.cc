#include "transport/secure/job_secret.h"

#include <fmt/format.h>
#include <sodium.h>
#include <sys/stat.h>

#include <fstream>
#include <stdexcept>
#include <system_error>

namespace torchwan::security {
namespace {

void require_sodium() {
  // Idempotent and thread-safe; returns -1 only when no entropy source can be opened.
  if (sodium_init() < 0) throw std::runtime_error("torchwan: libsodium could not initialise");
}

std::string to_hex(std::span<const uint8_t> bytes) {
  std::string hex(bytes.size() * 2 + 1, '\0');
  sodium_bin2hex(hex.data(), hex.size(), bytes.data(), bytes.size());
  hex.pop_back();
  return hex;
}

}  // namespace

JobSecret::JobSecret(std::span<const uint8_t> bytes) {
  if (bytes.size() != kSecretBytes) {
    throw std::invalid_argument(
        fmt::format("torchwan: a job secret is {} bytes, got {}", kSecretBytes, bytes.size()));
  }
  std::copy(bytes.begin(), bytes.end(), bytes_.begin());
}

JobSecret::~JobSecret() { sodium_memzero(bytes_.data(), bytes_.size()); }

JobSecret JobSecret::from_bytes(std::span<const uint8_t> bytes) {
  require_sodium();
  return JobSecret(bytes);
}

JobSecret JobSecret::load_file(const std::filesystem::path& path) {
  require_sodium();
  struct stat info {};
  if (::stat(path.c_str(), &info) != 0) {
    throw std::runtime_error(fmt::format("torchwan: cannot read the job secret file {}: {}",
                                         path.string(), std::generic_category().message(errno)));
  }
  if ((info.st_mode & (S_IRWXG | S_IRWXO)) != 0) {
    throw std::runtime_error(fmt::format(
        "torchwan: the job secret file {} is accessible by group or others (mode {:o}); "
        "chmod 600 it",
        path.string(), info.st_mode & 0777));
  }
  std::ifstream in(path);
  std::string text;
  if (!in || !std::getline(in, text)) {
    throw std::runtime_error(
        fmt::format("torchwan: cannot read the job secret file {}", path.string()));
  }
  while (!text.empty() && (text.back() == '\r' || text.back() == ' ')) text.pop_back();
  std::array<uint8_t, kSecretBytes> bytes{};
  size_t decoded = 0;
  const char* end = nullptr;
  const bool ok = text.size() == kSecretBytes * 2 &&
                  sodium_hex2bin(bytes.data(), bytes.size(), text.data(), text.size(), nullptr,
                                 &decoded, &end) == 0 &&
                  decoded == kSecretBytes;
  sodium_memzero(text.data(), text.size());
  if (!ok) {
    throw std::runtime_error(fmt::format(
        "torchwan: the job secret file {} is malformed: expected one line of {} hex digits "
        "(create one with `torchwan-coordinator --make-secret FILE`)",
        path.string(), kSecretBytes * 2));
  }
  JobSecret secret(bytes);
  sodium_memzero(bytes.data(), bytes.size());
  return secret;
}

JobSecret JobSecret::create_file(const std::filesystem::path& path) {
  require_sodium();
  std::array<uint8_t, kSecretBytes> bytes{};
  randombytes_buf(bytes.data(), bytes.size());
  JobSecret secret(bytes);
  // O_EXCL: never replace a secret a running job may depend on.
  const mode_t old_mask = ::umask(077);
  std::FILE* file = std::fopen(path.c_str(), "wx");
  ::umask(old_mask);
  if (file == nullptr) {
    throw std::runtime_error(fmt::format("torchwan: cannot create the job secret file {}: {}",
                                         path.string(), std::generic_category().message(errno)));
  }
  std::string hex = to_hex(bytes);
  hex.push_back('\n');
  const bool written = std::fwrite(hex.data(), 1, hex.size(), file) == hex.size();
  const bool closed = std::fclose(file) == 0;
  sodium_memzero(hex.data(), hex.size());
  sodium_memzero(bytes.data(), bytes.size());
  if (!written || !closed) {
    throw std::runtime_error(
        fmt::format("torchwan: cannot write the job secret file {}", path.string()));
  }
  return secret;
}

Proof JobSecret::prove(std::string_view label, std::span<const uint8_t> message) const {
  crypto_auth_hmacsha256_state state;
  crypto_auth_hmacsha256_init(&state, bytes_.data(), bytes_.size());
  // Length-prefix the label so that (label, message) pairs cannot collide by shifting bytes.
  const uint64_t label_size = label.size();
  crypto_auth_hmacsha256_update(&state, reinterpret_cast<const uint8_t*>(&label_size),
                                sizeof(label_size));
  crypto_auth_hmacsha256_update(&state, reinterpret_cast<const uint8_t*>(label.data()),
                                label.size());
  crypto_auth_hmacsha256_update(&state, message.data(), message.size());
  Proof proof{};
  crypto_auth_hmacsha256_final(&state, proof.data());
  sodium_memzero(&state, sizeof(state));
  return proof;
}

bool JobSecret::verify(std::string_view label, std::span<const uint8_t> message,
                       const Proof& proof) const {
  const Proof expected = prove(label, message);
  return sodium_memcmp(expected.data(), proof.data(), kProofBytes) == 0;
}

DerivedKey::~DerivedKey() { sodium_memzero(bytes_.data(), bytes_.size()); }

DerivedKey JobSecret::derive_key(std::string_view label, std::span<const uint8_t> context) const {
  crypto_generichash_state state;
  crypto_generichash_init(&state, bytes_.data(), bytes_.size(), kDerivedKeyBytes);
  // Length-prefixed label, as in prove(): (label, context) pairs cannot collide by shifting bytes.
  const uint64_t label_size = label.size();
  crypto_generichash_update(&state, reinterpret_cast<const uint8_t*>(&label_size),
                            sizeof(label_size));
  crypto_generichash_update(&state, reinterpret_cast<const uint8_t*>(label.data()), label.size());
  crypto_generichash_update(&state, context.data(), context.size());
  std::array<uint8_t, kDerivedKeyBytes> bytes{};
  crypto_generichash_final(&state, bytes.data(), bytes.size());
  sodium_memzero(&state, sizeof(state));
  DerivedKey key(bytes);
  sodium_memzero(bytes.data(), bytes.size());
  return key;
}

CurveKeyPair JobSecret::curve_keys() const {
  // The seed is a keyed hash of the secret, so the key pair is tied to it but no other derived
  // value (proofs, fingerprint) can be turned into it.
  std::array<uint8_t, crypto_box_SEEDBYTES> seed{};
  static constexpr std::string_view kLabel = "torchwan curve key v1";
  crypto_generichash(seed.data(), seed.size(), reinterpret_cast<const uint8_t*>(kLabel.data()),
                     kLabel.size(), bytes_.data(), bytes_.size());
  std::array<uint8_t, crypto_box_PUBLICKEYBYTES> public_key{};
  std::array<uint8_t, crypto_box_SECRETKEYBYTES> secret_key{};
  crypto_box_seed_keypair(public_key.data(), secret_key.data(), seed.data());
  sodium_memzero(seed.data(), seed.size());
  // Z85 turns every 4 bytes into 5 characters; 32 bytes give 40 characters.
  static constexpr char kZ85[] =
      "0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ.-:+=^!/*?&<>()[]{}@%$#";
  auto z85 = [](std::span<const uint8_t> bytes) {
    std::string text;
    for (size_t i = 0; i < bytes.size(); i += 4) {
      uint32_t value = (uint32_t{bytes[i]} << 24) | (uint32_t{bytes[i + 1]} << 16) |
                       (uint32_t{bytes[i + 2]} << 8) | uint32_t{bytes[i + 3]};
      char chunk[5];
      for (int j = 4; j >= 0; --j) {
        chunk[j] = kZ85[value % 85];
        value /= 85;
      }
      text.append(chunk, 5);
    }
    return text;
  };
  CurveKeyPair keys{z85(public_key), z85(secret_key)};
  sodium_memzero(secret_key.data(), secret_key.size());
  return keys;
}

std::string JobSecret::fingerprint() const {
  std::array<uint8_t, 16> digest{};
  static constexpr std::string_view kLabel = "torchwan fingerprint v1";
  crypto_generichash(digest.data(), digest.size(), reinterpret_cast<const uint8_t*>(kLabel.data()),
                     kLabel.size(), bytes_.data(), bytes_.size());
  return to_hex(std::span<const uint8_t>(digest.data(), 4));
}

Nonce random_nonce() {
  require_sodium();
  Nonce nonce{};
  randombytes_buf(nonce.data(), nonce.size());
  return nonce;
}

}  // namespace torchwan::security
