// The elastic layer's spdlog logger ("torchwan.elastic"), level from TORCHWAN_LOG_LEVEL.
#pragma once

#include <memory>

#include "base/log.h"

namespace torchwan::elastic {

// Objects look their logger up once at construction and keep the shared_ptr; the lookup takes a
// process-wide lock, which a per-message call would contend on.
inline std::shared_ptr<spdlog::logger> elastic_logger() { return layer_logger("elastic"); }

}  // namespace torchwan::elastic
