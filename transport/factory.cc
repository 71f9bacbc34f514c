#include "transport/transport.h"
#include "transport/ucx/ucx_transport.h"
#include "transport/zmq/zmq_transport.h"

namespace torchwan::transport {

std::unique_ptr<Transport> Transport::create(const TransportOptions& options, Store& store,
                                             int rank, int size) {
  options.validate();
  if (rank < 0 || rank >= size || size > 65535) {
    throw TransportError(ErrorKind::kInvalidArgument, "rank " + std::to_string(rank) +
                                                          " / size " + std::to_string(size) +
                                                          " is invalid (size at most 65535)");
  }
  if (options.transport == "zmq") return std::make_unique<ZmqTransport>(options, store, rank, size);
  return std::make_unique<UcxTransport>(options, store, rank, size);
}

}  // namespace torchwan::transport
