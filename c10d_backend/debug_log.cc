#include "c10d_backend/debug_log.h"

#include "base/log.h"

namespace torchwan::c10d_backend {

void log_debug(const std::string& message) { layer_logger("c10d")->debug("{}", message); }

}  // namespace torchwan::c10d_backend
