// Progress for long waits during connection setup: over a slow or half-started job, group creation
// can wait for minutes, and a silent wait looks like a hang. A WaitProgress says what is still
// being waited for, at most once per interval and only once a wait has lasted that long, so a
// quick bootstrap stays silent.
#pragma once

#include <chrono>
#include <functional>
#include <string>

namespace torchwan::transport {

class WaitProgress {
 public:
  // Seconds between two progress lines (and before the first).
  static constexpr std::chrono::milliseconds kInterval{3000};

  explicit WaitProgress(std::chrono::milliseconds interval = kInterval);

  // Logs describe() to the transport logger if a line is due. At info level; also when stderr
  // is a terminal and info is off, because a person watching it wants the wait explained.
  void maybe_log(const std::function<std::string()>& describe);

  // How long the next wait may block so that the next line is not late.
  std::chrono::milliseconds until_due() const;

 private:
  std::chrono::milliseconds interval_;
  std::chrono::steady_clock::time_point start_;
  std::chrono::steady_clock::time_point next_;
};

}  // namespace torchwan::transport
