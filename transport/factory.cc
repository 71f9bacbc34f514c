#include <fmt/format.h>

#include "transport/counting_transport.h"
#include "transport/secure/encrypted_transport.h"
#include "transport/transport.h"
#include "transport/ucx/ucx_transport.h"
#include "transport/zmq/zmq_transport.h"

namespace torchwan::transport {

std::unique_ptr<Transport> Transport::create(const TransportOptions& options, Store& store,
                                             int rank, int size) {
  options.validate();
  if (rank < 0 || rank >= size || size > 65535) {
    throw TransportError(ErrorKind::kInvalidArgument, "rank " + std::to_string(rank) + " / size " +
                                                          std::to_string(size) +
                                                          " is invalid (size at most 65535)");
  }
  const bool relay_given = !options.relay.empty();
  const bool encrypted =
      effective_encryption(options.encryption, relay_given) != EncryptionSetting::kNone;
  if (encrypted && options.secret_file.empty() && options.encryption == "auto") {
    throw TransportError(
        ErrorKind::kInvalidArgument,
        fmt::format("rank {}: a relay is given (TORCHWAN_RELAY={}), and the lanes "
                    "it forwards are encrypted end to end by default, which needs "
                    "the job secret: set TORCHWAN_SECRET_FILE (python -m "
                    "torchwan.secret FILE writes one), or TORCHWAN_ENCRYPTION=none "
                    "to let the relay see the data",
                    rank, options.relay));
  }
  if (encrypted && options.secret_file.empty()) {
    throw TransportError(ErrorKind::kInvalidArgument,
                         fmt::format("rank {}: encryption={} needs the job secret (set "
                                     "TORCHWAN_SECRET_FILE or secret_file): the session key is "
                                     "derived from it",
                                     rank, options.encryption));
  }
  std::unique_ptr<Transport> inner;
  if (options.transport == "zmq") {
    inner = std::make_unique<ZmqTransport>(options, store, rank, size);
  } else {
    inner = std::make_unique<UcxTransport>(options, store, rank, size);
  }
  // Counted inside encryption: the bytes that crossed the network.
  inner = std::make_unique<CountingTransport>(std::move(inner));
  if (!encrypted) return inner;
  return std::make_unique<EncryptedTransport>(std::move(inner), store);
}

}  // namespace torchwan::transport
