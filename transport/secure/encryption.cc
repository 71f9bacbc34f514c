#include "transport/secure/encryption.h"

#include <sodium.h>

#include <stdexcept>

namespace torchwan::transport {

EncryptionSetting parse_encryption_setting(const std::string& text) {
  if (text == "none" || text.empty()) return EncryptionSetting::kNone;
  if (text == "aes-256-gcm") return EncryptionSetting::kAes256Gcm;
  if (text == "chacha20-poly1305") return EncryptionSetting::kChacha20Poly1305;
  if (text == "on") return EncryptionSetting::kOn;
  throw std::invalid_argument("encryption='" + text +
                              "' is unknown (use none, aes-256-gcm, chacha20-poly1305 or on)");
}

std::string encryption_setting_name(EncryptionSetting setting) {
  switch (setting) {
    case EncryptionSetting::kNone:
      return "none";
    case EncryptionSetting::kAes256Gcm:
      return "aes-256-gcm";
    case EncryptionSetting::kChacha20Poly1305:
      return "chacha20-poly1305";
    case EncryptionSetting::kOn:
      return "on";
  }
  return "unknown";
}

std::string cipher_name(Cipher cipher) {
  switch (cipher) {
    case Cipher::kNone:
      return "none";
    case Cipher::kAes256Gcm:
      return "aes-256-gcm";
    case Cipher::kChacha20Poly1305:
      return "chacha20-poly1305";
  }
  return "unknown";
}

bool aes_gcm_available() {
  // sodium_init detects the CPU features that crypto_aead_aes256gcm_is_available reports; it is
  // idempotent and thread-safe.
  if (sodium_init() < 0) return false;
  return crypto_aead_aes256gcm_is_available() != 0;
}

Cipher resolve_cipher(EncryptionSetting setting, bool every_rank_has_aes) {
  switch (setting) {
    case EncryptionSetting::kNone:
      return Cipher::kNone;
    case EncryptionSetting::kAes256Gcm:
      return Cipher::kAes256Gcm;
    case EncryptionSetting::kChacha20Poly1305:
      return Cipher::kChacha20Poly1305;
    case EncryptionSetting::kOn:
      return every_rank_has_aes ? Cipher::kAes256Gcm : Cipher::kChacha20Poly1305;
  }
  return Cipher::kNone;
}

}  // namespace torchwan::transport
