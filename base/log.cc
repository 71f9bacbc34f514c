#include "base/log.h"

#include <spdlog/sinks/stdout_color_sinks.h>

#include <cstdlib>
#include <mutex>

namespace torchwan {

std::shared_ptr<spdlog::logger> layer_logger(const std::string& layer) {
  const std::string name = "torchwan." + layer;
  // spdlog's registry is process-wide; creation must not race between two first users.
  static std::mutex creation_mutex;
  std::lock_guard<std::mutex> lock(creation_mutex);
  if (auto existing = spdlog::get(name)) return existing;
  auto logger = spdlog::stderr_color_mt(name);
  const char* level = std::getenv("TORCHWAN_LOG_LEVEL");
  logger->set_level(level != nullptr ? spdlog::level::from_str(level) : spdlog::level::warn);
  return logger;
}

}  // namespace torchwan
