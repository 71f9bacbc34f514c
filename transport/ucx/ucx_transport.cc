#include "transport/ucx/ucx_transport.h"

namespace torchwan::transport {

UcxTransport::UcxTransport(const TransportOptions& options, Store&, int rank, int size)
    : options_(options), rank_(rank), size_(size) {
  throw TransportError(ErrorKind::kInternal, "ucx transport not built yet");
}
std::shared_ptr<Request> UcxTransport::isend(int, Tag, const void*, size_t, Request::Callback) {
  return nullptr;
}
std::shared_ptr<Request> UcxTransport::irecv(int, Tag, void*, size_t, Request::Callback) {
  return nullptr;
}

}  // namespace torchwan::transport
