// One spdlog logger per layer, level from TORCHWAN_LOG_LEVEL (default: warn).
#pragma once

#include <spdlog/spdlog.h>

#include <memory>
#include <string>

namespace torchwan {

// Returns the logger named "torchwan.<layer>", creating it on first use.
std::shared_ptr<spdlog::logger> layer_logger(const std::string& layer);

}  // namespace torchwan
