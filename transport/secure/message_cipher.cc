#include "transport/secure/message_cipher.h"

#include <sodium.h>

#include <array>
#include <cstring>
#include <string>

#include "base/byte_io.h"
#include "transport/errors.h"

namespace torchwan::transport {

namespace {

static_assert(crypto_aead_aes256gcm_NPUBBYTES == 12 &&
              crypto_aead_chacha20poly1305_ietf_NPUBBYTES == 12);
static_assert(crypto_aead_aes256gcm_ABYTES == kSealTagBytes &&
              crypto_aead_chacha20poly1305_ietf_ABYTES == kSealTagBytes);
static_assert(crypto_aead_aes256gcm_KEYBYTES == security::kDerivedKeyBytes &&
              crypto_aead_chacha20poly1305_ietf_KEYBYTES == security::kDerivedKeyBytes);

using Nonce = std::array<uint8_t, 12>;
using AssociatedData = std::array<uint8_t, 4 + 4 + 8 + 8>;

// Ranks are below 65536 (Transport::create checks), so two bytes each name them exactly.
Nonce make_nonce(const MessageRoute& route, uint64_t counter) {
  Nonce nonce{};
  base::ByteWriter out(nonce);
  out.put(static_cast<uint16_t>(route.sender));
  out.put(static_cast<uint16_t>(route.receiver));
  out.put(counter);
  return nonce;
}

AssociatedData make_associated_data(const MessageRoute& route, size_t length) {
  AssociatedData data{};
  base::ByteWriter out(data);
  out.put(static_cast<uint32_t>(route.sender));
  out.put(static_cast<uint32_t>(route.receiver));
  out.put(static_cast<uint64_t>(route.tag));
  out.put(static_cast<uint64_t>(length));
  return data;
}

// libsodium wants a valid pointer even for an empty message.
const uint8_t* non_null(const void* data) {
  static constexpr uint8_t kEmpty = 0;
  return data != nullptr ? static_cast<const uint8_t*>(data) : &kEmpty;
}

}  // namespace

struct MessageCipher::AesKeySchedule {
  crypto_aead_aes256gcm_state state;
};

MessageCipher::MessageCipher(Cipher cipher, const security::DerivedKey& key)
    : cipher_(cipher), key_(key) {
  if (sodium_init() < 0) {
    throw TransportError(ErrorKind::kInternal, "libsodium could not initialise");
  }
  if (cipher_ == Cipher::kAes256Gcm) {
    if (!aes_gcm_available()) {
      throw TransportError(ErrorKind::kInvalidArgument,
                           "encryption aes-256-gcm needs a CPU with AES-NI and PCLMULQDQ; use "
                           "chacha20-poly1305 or on");
    }
    aes_ = std::make_unique<AesKeySchedule>();
    crypto_aead_aes256gcm_beforenm(&aes_->state, key_.data());
  } else if (cipher_ != Cipher::kChacha20Poly1305) {
    throw TransportError(ErrorKind::kInvalidArgument,
                         "MessageCipher needs a cipher, got " + cipher_name(cipher_));
  }
}

MessageCipher::~MessageCipher() {
  if (aes_) sodium_memzero(&aes_->state, sizeof(aes_->state));
}

size_t MessageCipher::max_message_bytes() const {
  return cipher_ == Cipher::kAes256Gcm ? crypto_aead_aes256gcm_MESSAGEBYTES_MAX
                                       : crypto_aead_chacha20poly1305_ietf_MESSAGEBYTES_MAX;
}

void MessageCipher::seal(const MessageRoute& route, uint64_t counter, const void* plaintext,
                         size_t length, uint8_t* sealed) const {
  const Nonce nonce = make_nonce(route, counter);
  const AssociatedData associated = make_associated_data(route, length);
  base::ByteWriter(std::span<uint8_t>(sealed, kSealedHeaderBytes)).put(counter);
  uint8_t* ciphertext = sealed + kSealedHeaderBytes;
  uint8_t* mac = ciphertext + length;
  const uint8_t* message = non_null(plaintext);
  if (cipher_ == Cipher::kAes256Gcm) {
    crypto_aead_aes256gcm_encrypt_detached_afternm(ciphertext, mac, nullptr, message, length,
                                                   associated.data(), associated.size(), nullptr,
                                                   nonce.data(), &aes_->state);
  } else {
    crypto_aead_chacha20poly1305_ietf_encrypt_detached(ciphertext, mac, nullptr, message, length,
                                                       associated.data(), associated.size(),
                                                       nullptr, nonce.data(), key_.data());
  }
}

std::optional<uint64_t> MessageCipher::open_in_place(const MessageRoute& route, uint8_t* sealed,
                                                     size_t sealed_length) const {
  if (sealed_length < kSealOverheadBytes) return std::nullopt;
  const size_t length = sealed_length - kSealOverheadBytes;
  const auto counter =
      base::ByteReader(sealed, kSealedHeaderBytes, "sealed message").get<uint64_t>("counter");
  const Nonce nonce = make_nonce(route, counter);
  const AssociatedData associated = make_associated_data(route, length);
  uint8_t* ciphertext = sealed + kSealedHeaderBytes;
  const uint8_t* mac = ciphertext + length;
  int status = 0;
  if (cipher_ == Cipher::kAes256Gcm) {
    status = crypto_aead_aes256gcm_decrypt_detached_afternm(
        ciphertext, nullptr, ciphertext, length, mac, associated.data(), associated.size(),
        nonce.data(), &aes_->state);
  } else {
    status = crypto_aead_chacha20poly1305_ietf_decrypt_detached(
        ciphertext, nullptr, ciphertext, length, mac, associated.data(), associated.size(),
        nonce.data(), key_.data());
  }
  if (status != 0) return std::nullopt;
  return counter;
}

}  // namespace torchwan::transport
