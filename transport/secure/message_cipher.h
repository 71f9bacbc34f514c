// Authenticated encryption of one data message under a group's session key.
//
// Sealed layout: counter (8 bytes, little-endian) | ciphertext (as long as the plaintext) | AEAD
// tag (16 bytes). The 12-byte nonce is sender rank (2) | receiver rank (2) | counter (8): every
// sender numbers its messages to each receiver, so under one key no nonce repeats. The
// associated data binds sender, receiver, message tag and length, so a message cannot be moved to
// another rank, tag or size. The counter comes from the header but enters the nonce, so changing
// it fails authentication; the receiver accepts each counter once (transport/replay_window.h).
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>

#include "transport/request.h"
#include "transport/secure/encryption.h"
#include "transport/secure/job_secret.h"

namespace torchwan::transport {

inline constexpr size_t kSealedHeaderBytes = 8;
inline constexpr size_t kSealTagBytes = 16;
inline constexpr size_t kSealOverheadBytes = kSealedHeaderBytes + kSealTagBytes;

// Who sent a sealed message to whom, on which tag: what the nonce and associated data bind.
struct MessageRoute {
  int sender = 0;
  int receiver = 0;
  Tag tag = 0;
};

class MessageCipher {
 public:
  // `cipher` must not be kNone; AES-256-GCM requires aes_gcm_available(). Throws
  // TransportError(kInvalidArgument) otherwise.
  MessageCipher(Cipher cipher, const security::DerivedKey& key);
  ~MessageCipher();
  MessageCipher(const MessageCipher&) = delete;
  MessageCipher& operator=(const MessageCipher&) = delete;

  Cipher cipher() const { return cipher_; }
  // The longest plaintext one message may have (the ciphers' own limits, 64 GiB and more).
  size_t max_message_bytes() const;

  // Writes the sealed form of `length` bytes at `plaintext` to `sealed`, which must hold
  // length + kSealOverheadBytes bytes and must not overlap the plaintext.
  void seal(const MessageRoute& route, uint64_t counter, const void* plaintext, size_t length,
            uint8_t* sealed) const;
  // Authenticates `sealed` (sealed_length bytes) and decrypts it in place: on success the
  // plaintext lies at sealed + kSealedHeaderBytes, sealed_length - kSealOverheadBytes bytes long,
  // and the message's counter is returned. Returns nullopt when it is too short or fails
  // authentication; the bytes at `sealed` are then garbage that nobody may read.
  std::optional<uint64_t> open_in_place(const MessageRoute& route, uint8_t* sealed,
                                        size_t sealed_length) const;

 private:
  struct AesKeySchedule;

  Cipher cipher_;
  security::DerivedKey key_;
  // Expanded once: AES-GCM's per-message key setup would otherwise cost as much as a small message.
  std::unique_ptr<AesKeySchedule> aes_;
};

}  // namespace torchwan::transport
