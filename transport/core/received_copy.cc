#include "transport/core/received_copy.h"

#include <cstring>

#if defined(__SSE2__)
#include <emmintrin.h>
#endif

namespace torchwan::transport::core {

void copy_received_piece(uint8_t* destination, const uint8_t* source, size_t length) {
#if defined(__SSE2__)
  if (length >= kStreamingCopyMinBytes) {
    // Streaming stores need a 16-byte aligned destination; the source may be anywhere.
    const size_t head = (16 - (reinterpret_cast<uintptr_t>(destination) & 15)) & 15;
    std::memcpy(destination, source, head);
    destination += head;
    source += head;
    length -= head;
    for (; length >= 64; length -= 64, source += 64, destination += 64) {
      const auto* in = reinterpret_cast<const __m128i*>(source);
      auto* out = reinterpret_cast<__m128i*>(destination);
      const __m128i a = _mm_loadu_si128(in);
      const __m128i b = _mm_loadu_si128(in + 1);
      const __m128i c = _mm_loadu_si128(in + 2);
      const __m128i d = _mm_loadu_si128(in + 3);
      _mm_stream_si128(out, a);
      _mm_stream_si128(out + 1, b);
      _mm_stream_si128(out + 2, c);
      _mm_stream_si128(out + 3, d);
    }
    std::memcpy(destination, source, length);
    // Streaming stores are weakly ordered: make them visible before the request completes on
    // another thread.
    _mm_sfence();
    return;
  }
#endif
  std::memcpy(destination, source, length);
}

}  // namespace torchwan::transport::core
