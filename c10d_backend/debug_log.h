// Debug-level logging for the c10d layer through the "torchwan.c10d" spdlog logger. A separate
// torch-free translation unit: torch ships its own fmt headers, which clash with the fmt spdlog
// was built against when both are on one include path.
#pragma once

#include <string>

namespace torchwan::c10d_backend {

void log_debug(const std::string& message);

}  // namespace torchwan::c10d_backend
