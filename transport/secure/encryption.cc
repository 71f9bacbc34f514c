#include "transport/secure/encryption.h"

#include <sodium.h>

#include <iterator>
#include <stdexcept>

#include "base/enum_names.h"

namespace torchwan::transport {

namespace {

// In value order; a Cipher's name is that of the setting with its value.
constexpr const char* kSettingNames[] = {"none", "aes-256-gcm", "chacha20-poly1305", "on"};
static_assert(std::size(kSettingNames) == kLastEncryptionSetting + 1);
static_assert(static_cast<int>(Cipher::kAes256Gcm) ==
                  static_cast<int>(EncryptionSetting::kAes256Gcm) &&
              static_cast<int>(Cipher::kChacha20Poly1305) ==
                  static_cast<int>(EncryptionSetting::kChacha20Poly1305));

}  // namespace

EncryptionSetting parse_encryption_setting(const std::string& text) {
  if (text.empty()) return EncryptionSetting::kNone;
  if (const auto setting = base::enum_value<EncryptionSetting>(text, kSettingNames)) {
    return *setting;
  }
  throw std::invalid_argument(
      "encryption='" + text +
      "' is unknown (use auto, none, aes-256-gcm, chacha20-poly1305 or on)");
}

EncryptionSetting effective_encryption(const std::string& text, bool relay_given) {
  if (text == "auto") return relay_given ? EncryptionSetting::kOn : EncryptionSetting::kNone;
  return parse_encryption_setting(text);
}

std::string encryption_setting_name(EncryptionSetting setting) {
  return base::enum_name(setting, kSettingNames);
}

std::string cipher_name(Cipher cipher) {
  return cipher == Cipher::kNone || cipher == Cipher::kAes256Gcm ||
                 cipher == Cipher::kChacha20Poly1305
             ? encryption_setting_name(static_cast<EncryptionSetting>(cipher))
             : "unknown";
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
