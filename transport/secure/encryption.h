// The data-plane encryption setting (TransportOptions::encryption) and the cipher it resolves to.
// Every rank publishes its setting in its auth record (transport/data_auth.h), so the cipher is
// agreed on at connection setup and a rank that differs is named on every rank.
#pragma once

#include <cstdint>
#include <string>

namespace torchwan::transport {

// What a rank asked for. The values travel in auth records: never renumber them.
enum class EncryptionSetting : uint8_t {
  kNone = 0,
  kAes256Gcm = 1,
  kChacha20Poly1305 = 2,
  kOn = 3,  // AES-256-GCM if every rank's CPU runs it in hardware, else ChaCha20-Poly1305
};
inline constexpr uint8_t kLastEncryptionSetting = 3;

// What a group actually runs; the values enter the session key derivation.
enum class Cipher : uint8_t {
  kNone = 0,
  kAes256Gcm = 1,
  kChacha20Poly1305 = 2,
};

// Throws std::invalid_argument naming the accepted values when `text` is none of them.
EncryptionSetting parse_encryption_setting(const std::string& text);
// What the setting `text` stands for once `relay_given` is known: "auto" (the default) is "on"
// when relays are given, so that a relay forwards ciphertext only, else "none"; any other setting
// stands for itself. Throws like parse_encryption_setting.
EncryptionSetting effective_encryption(const std::string& text, bool relay_given);
std::string encryption_setting_name(EncryptionSetting setting);
std::string cipher_name(Cipher cipher);

// Whether libsodium runs AES-256-GCM on this CPU (it needs AES-NI and PCLMULQDQ; there is no
// portable fallback because a software AES leaks its key through cache timing).
bool aes_gcm_available();

// The cipher of a group whose ranks all asked for `setting`; `every_rank_has_aes` is the AND of
// aes_gcm_available() over the ranks, so "on" resolves the same everywhere.
Cipher resolve_cipher(EncryptionSetting setting, bool every_rank_has_aes);

}  // namespace torchwan::transport
