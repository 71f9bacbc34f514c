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

std::shared_ptr<Request> ZmqTransport::post(Posting posting) {
  check_request_arguments(engine_->who(), rank_, size_, posting);
  if (posting.is_send()) {
    return engine_->send(posting.peer, posting.tag, posting.data, posting.length,
                         std::move(posting.callback));
  }
  return engine_->recv(posting.peer, posting.tag, posting.data, posting.length,
                       std::move(posting.callback));
}

void ZmqTransport::abort(const std::string& reason) { engine_->abort(reason); }

void ZmqTransport::set_peer_failure_handler(PeerFailureHandler handler) {
  engine_->set_peer_failure_handler(std::move(handler));
}

std::vector<LinkRung> ZmqTransport::links() const { return engine_->links(); }

}  // namespace torchwan::transport
