#include "transport/ucx/ucx_transport.h"

#include <memory>
#include <string>

#include "transport/ucx/ucx_engine.h"

namespace torchwan::transport {

UcxTransport::UcxTransport(const TransportOptions& options, Store& store, int rank, int size)
    : LinkTransport("ucx", "ucx rank " + std::to_string(rank), options, store, rank, size,
                    [](core::LinkSetup& setup) -> std::unique_ptr<core::Link> {
                      auto engine = std::make_unique<ucx::Engine>(setup.options, setup.rank,
                                                                  setup.size, setup.peers);
                      engine->watch_fd(setup.wakeup.fd());
                      engine->connect(setup.store, setup.deadline);
                      return engine;
                    }) {}

}  // namespace torchwan::transport
