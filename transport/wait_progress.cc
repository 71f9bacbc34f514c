#include "transport/wait_progress.h"

#include <unistd.h>

#include <algorithm>

#include "base/log.h"

namespace torchwan::transport {

using Clock = std::chrono::steady_clock;

WaitProgress::WaitProgress(std::chrono::milliseconds interval)
    : interval_(interval), start_(Clock::now()), next_(start_ + interval) {}

void WaitProgress::maybe_log(const std::function<std::string()>& describe) {
  const auto now = Clock::now();
  if (now < next_) return;
  next_ = now + interval_;
  auto logger = layer_logger("transport");
  spdlog::level::level_enum level = spdlog::level::info;
  if (!logger->should_log(level)) {
    if (isatty(STDERR_FILENO) == 0) return;
    level = spdlog::level::warn;
  }
  if (!logger->should_log(level)) return;
  const auto waited = std::chrono::duration_cast<std::chrono::seconds>(now - start_);
  logger->log(level, "{} (waiting {} s)", describe(), waited.count());
}

std::chrono::milliseconds WaitProgress::until_due() const {
  const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(next_ - Clock::now());
  return std::max(left, std::chrono::milliseconds(1));
}

}  // namespace torchwan::transport
