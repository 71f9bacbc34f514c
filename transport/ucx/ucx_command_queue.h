// How user threads hand work to the progress thread, which alone may touch UCX: the core's
// mailbox (transport/core/mailbox.h) of commands on the engine, whose eventfd wakes the progress
// thread from its epoll sleep.
#pragma once

#include <functional>

#include "transport/core/mailbox.h"

namespace torchwan::transport::ucx {

class Engine;

using CommandQueue = core::CommandMailbox<std::function<void(Engine&)>>;

}  // namespace torchwan::transport::ucx
