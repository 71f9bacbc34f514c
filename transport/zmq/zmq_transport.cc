#include "transport/zmq/zmq_transport.h"

#include "transport/request_arguments.h"
#include "transport/zmq/zmq_engine.h"

namespace torchwan::transport {

ZmqTransport::ZmqTransport(const TransportOptions& options, Store& store, int rank, int size)
    : options_(options), rank_(rank), size_(size) {
  if (size < 1 || size > 65535 || rank < 0 || rank >= size) {
    throw TransportError(ErrorKind::kInvalidArgument,
                         "zmq transport: rank " + std::to_string(rank) + " / size " +
                             std::to_string(size) + " is invalid (size at most 65535)");
  }
  try {
    options_.validate();
  } catch (const std::invalid_argument& error) {
    throw TransportError(ErrorKind::kInvalidArgument,
                         std::string("zmq transport: ") + error.what());
  }
  engine_ = std::make_unique<zmq_detail::Engine>(options_, store, rank, size);
}

ZmqTransport::~ZmqTransport() = default;

std::shared_ptr<Request> ZmqTransport::isend(int peer, Tag tag, const void* data, size_t length,
                                             Request::Callback callback) {
  check_request_arguments(engine_->who(), "isend", rank_, size_, peer, tag, data, length);
  return engine_->send(peer, tag, data, length, std::move(callback));
}

std::shared_ptr<Request> ZmqTransport::irecv(int peer, Tag tag, void* data, size_t length,
                                             Request::Callback callback) {
  check_request_arguments(engine_->who(), "irecv", rank_, size_, peer, tag, data, length);
  return engine_->recv(peer, tag, data, length, std::move(callback));
}

std::shared_ptr<Request> ZmqTransport::irecv_any(Tag tag, void* data, size_t length,
                                                 Request::Callback callback) {
  check_request_arguments(engine_->who(), "irecv_any", rank_, size_, std::nullopt, tag, data,
                          length);
  return engine_->recv(kAnySource, tag, data, length, std::move(callback));
}

void ZmqTransport::abort(const std::string& reason) { engine_->abort(reason); }

void ZmqTransport::set_peer_failure_handler(PeerFailureHandler handler) {
  engine_->set_peer_failure_handler(std::move(handler));
}

}  // namespace torchwan::transport
