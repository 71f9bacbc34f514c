#include "transport/zmq/zmq_transport.h"

#include <memory>

#include "transport/zmq/zmq_engine.h"

namespace torchwan::transport {

ZmqTransport::ZmqTransport(const TransportOptions& options, Store& store, int rank, int size)
    : LinkTransport("zmq", zmq_detail::Engine::who(rank), options, store, rank, size,
                    [](core::LinkSetup& setup) -> std::unique_ptr<core::Link> {
                      return std::make_unique<zmq_detail::Engine>(setup);
                    }) {}

}  // namespace torchwan::transport
