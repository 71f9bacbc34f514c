// The data-plane interface: N ranks connected through a bootstrap Store, exchanging tagged byte
// ranges asynchronously. A receive must name the exact length the sender sends; messages with the
// same (peer, tag) are matched in order. Implementations: ucx/ and zmq/.
#pragma once

#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "transport/errors.h"
#include "transport/link_rung.h"
#include "transport/options.h"
#include "transport/posting.h"
#include "transport/request.h"
#include "transport/store.h"
#include "transport/traffic.h"

namespace torchwan::transport {

class Transport {
 public:
  using PeerFailureHandler = std::function<void(int peer, const std::string& why)>;

  // Connects to every other rank (addresses exchanged through `store`, keys under "tw/").
  // Throws TransportError(kBootstrap) naming the missing rank if that takes longer than
  // options.connect_timeout.
  static std::unique_ptr<Transport> create(const TransportOptions& options, Store& store, int rank,
                                           int size);
  virtual ~Transport() = default;

  virtual int rank() const = 0;
  virtual int size() const = 0;
  virtual std::string name() const = 0;
  virtual const TransportOptions& options() const = 0;

  // `data` must stay valid until the request is done. `peer` must not be this rank; tag < kMaxTag.
  std::shared_ptr<Request> isend(int peer, Tag tag, const void* data, size_t length,
                                 Request::Callback callback = {}) {
    return post(
        {Posting::Kind::kSend, peer, tag, const_cast<void*>(data), length, std::move(callback)});
  }
  std::shared_ptr<Request> irecv(int peer, Tag tag, void* data, size_t length,
                                 Request::Callback callback = {}) {
    return post({Posting::Kind::kReceive, peer, tag, data, length, std::move(callback)});
  }
  // Receives one `length`-byte message with `tag` from whichever rank sends one first; once the
  // request is done, source() names that rank (peer() stays kAnySource). Messages from one sender
  // still match in order, and a message goes to the oldest posted receive that accepts it, exact
  // or any-source, as far as the implementation can tell (each documents its rule). A sender that
  // is lost does not fail a pending any-source receive: other ranks may still send.
  std::shared_ptr<Request> irecv_any(Tag tag, void* data, size_t length,
                                     Request::Callback callback = {}) {
    return post({Posting::Kind::kReceiveAny, kAnySource, tag, data, length, std::move(callback)});
  }
  // What isend, irecv and irecv_any become: the one call an implementation overrides.
  virtual std::shared_ptr<Request> post(Posting posting) = 0;

  // Fails every pending request with kAborted and `reason`; later calls fail at once.
  virtual void abort(const std::string& reason) = 0;
  // Called (on the progress thread) when a peer is lost; every pending request to or from that
  // peer has already failed with kPeerLost.
  virtual void set_peer_failure_handler(PeerFailureHandler handler) = 0;

  // Completed messages and bytes per peer rank (index = rank), where the transport counts them
  // (Transport::create's transports do; see counting_transport.h); empty otherwise.
  virtual std::vector<PeerTraffic> traffic() const { return {}; }
  // Per peer rank (index = rank) the rung that carries its lanes; this rank's own entry is
  // meaningless. Empty when every peer is connected directly.
  virtual std::vector<LinkRung> links() const { return {}; }
};

}  // namespace torchwan::transport
