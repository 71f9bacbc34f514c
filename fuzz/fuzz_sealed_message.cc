// Sealed data message (transport/secure/message_cipher.h): what an encrypted transport
// authenticates and decrypts in place when a receive completes. Input: cipher selector, sender,
// receiver, tag, then the sealed bytes. Nothing but a genuine seal under the key may open, and what
// opens re-seals to exactly the input.
#include <array>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <vector>

#include "transport/secure/message_cipher.h"

namespace {

using namespace torchwan::transport;

// The fixed key fuzz_write_seeds seals its seeds with.
const MessageCipher& cipher_for(uint8_t selector) {
  static const auto key = [] {
    std::array<uint8_t, torchwan::security::kDerivedKeyBytes> bytes{};
    bytes.fill(0x42);
    return torchwan::security::DerivedKey(bytes);
  }();
  static const MessageCipher chacha(Cipher::kChacha20Poly1305, key);
  if ((selector & 1) != 0 || !aes_gcm_available()) return chacha;
  static const MessageCipher aes(Cipher::kAes256Gcm, key);
  return aes;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size < 4) return 0;
  const MessageCipher& cipher = cipher_for(data[0]);
  const MessageRoute route{data[1], data[2], data[3]};
  std::vector<uint8_t> sealed(data + 4, data + size);
  const auto counter = cipher.open_in_place(route, sealed.data(), sealed.size());
  if (sealed.size() < kSealOverheadBytes && counter) __builtin_trap();
  if (counter) {
    const size_t length = sealed.size() - kSealOverheadBytes;
    std::vector<uint8_t> again(sealed.size());
    cipher.seal(route, *counter, sealed.data() + kSealedHeaderBytes, length, again.data());
    if (std::memcmp(again.data(), data + 4, again.size()) != 0) __builtin_trap();
  }
  return 0;
}
