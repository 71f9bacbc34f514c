#include "relay/relay_options.h"

#include <fmt/format.h>

#include <algorithm>
#include <stdexcept>

namespace torchwan::relay {

void validate(const RelayOptions& options) {
  if (options.window_bytes == 0) throw std::invalid_argument("relay: --window-bytes must be > 0");
  if (options.max_chunk_bytes == 0) throw std::invalid_argument("relay: max chunk must be > 0");
  if (options.max_chunk_bytes > options.window_bytes) {
    throw std::invalid_argument(fmt::format(
        "relay: max chunk {} bytes exceeds the window of {} bytes: no chunk could ever be sent",
        options.max_chunk_bytes, options.window_bytes));
  }
  if (options.max_streams == 0) throw std::invalid_argument("relay: --max-streams must be > 0");
  if (options.max_memory_bytes < options.window_bytes) {
    throw std::invalid_argument(
        fmt::format("relay: --max-memory-mb ({} bytes) is below one window ({} bytes)",
                    options.max_memory_bytes, options.window_bytes));
  }
}

size_t effective_max_streams(const RelayOptions& options) {
  return static_cast<size_t>(
      std::min<uint64_t>(options.max_streams, options.max_memory_bytes / options.window_bytes));
}

}  // namespace torchwan::relay
