// The job secret: 32 random bytes that every member of a job and its coordinator hold, read from
// a file only its owner can read. Nothing here ever puts the secret's bytes into text: what logs
// and errors may show is its fingerprint (a hash that cannot be turned back into the secret).
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <span>
#include <string>

namespace torchwan::security {

inline constexpr size_t kSecretBytes = 32;
inline constexpr size_t kProofBytes = 32;  // HMAC-SHA-256
inline constexpr size_t kNonceBytes = 16;

using Proof = std::array<uint8_t, kProofBytes>;
using Nonce = std::array<uint8_t, kNonceBytes>;

inline constexpr size_t kDerivedKeyBytes = 32;

// A symmetric key derived from the job secret (JobSecret::derive_key). Like the secret, it never
// appears in text, and its bytes are wiped when it is destroyed.
class DerivedKey {
 public:
  explicit DerivedKey(const std::array<uint8_t, kDerivedKeyBytes>& bytes) : bytes_(bytes) {}
  DerivedKey(const DerivedKey&) = default;
  DerivedKey& operator=(const DerivedKey&) = default;
  ~DerivedKey();
  const uint8_t* data() const { return bytes_.data(); }
  static constexpr size_t size() { return kDerivedKeyBytes; }

 private:
  std::array<uint8_t, kDerivedKeyBytes> bytes_{};
};

// Keys for ZeroMQ CURVE, Z85-encoded (40 characters), as zmq's curve options take them.
struct CurveKeyPair {
  std::string public_key;
  std::string secret_key;
};

class JobSecret {
 public:
  // Reads a secret file written by create_file(): one line of 64 hex digits. Throws
  // std::runtime_error naming the path (never the content) when it is missing, unreadable,
  // malformed, or readable by group or others.
  static JobSecret load_file(const std::filesystem::path& path);
  // Writes a new random secret to `path` with mode 0600; refuses to overwrite an existing file.
  static JobSecret create_file(const std::filesystem::path& path);
  static JobSecret from_bytes(std::span<const uint8_t> bytes);  // exactly kSecretBytes

  // HMAC-SHA-256 keyed by the secret over a domain label and the message. The label keeps proofs
  // made for one purpose (a data connection, a membership message) from being replayed for another.
  Proof prove(std::string_view label, std::span<const uint8_t> message) const;
  // Constant-time comparison against prove(label, message).
  bool verify(std::string_view label, std::span<const uint8_t> message, const Proof& proof) const;

  // BLAKE2b keyed by the secret over a domain label and a context: the same key on every holder
  // of the secret for the same context, and no other derived value (proofs, CURVE keys,
  // fingerprint) reveals it.
  DerivedKey derive_key(std::string_view label, std::span<const uint8_t> context) const;

  // The same key pair on every holder of the secret, so that a CURVE server accepts exactly the
  // clients whose key is this one (and a client knows whom it talks to) without distributing keys.
  CurveKeyPair curve_keys() const;

  // Eight hex digits identifying the secret in logs and errors; reveals nothing about it.
  std::string fingerprint() const;

  JobSecret(const JobSecret&) = default;
  JobSecret& operator=(const JobSecret&) = default;
  ~JobSecret();  // wipes the bytes

 private:
  explicit JobSecret(std::span<const uint8_t> bytes);
  std::array<uint8_t, kSecretBytes> bytes_{};
};

// A fresh random nonce for a challenge.
Nonce random_nonce();

}  // namespace torchwan::security
