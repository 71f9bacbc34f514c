// Connection setup: bind, publish, read the peers' addresses, connect, exchange hellos.
#include <algorithm>
#include <cerrno>

#include "transport/host_candidates.h"
#include "transport/peer_records.h"
#include "transport/wait_progress.h"
#include "transport/zmq/zmq_engine.h"
#include "transport/zmq/zmq_sockets.h"
#include "transport/zmq/zmq_wire.h"

namespace torchwan::transport::zmq_detail {

namespace {

using Clock = std::chrono::steady_clock;

constexpr int kDealerEvents = ZMQ_EVENT_DISCONNECTED | ZMQ_EVENT_CONNECTED |
                              ZMQ_EVENT_CONNECT_RETRIED | ZMQ_EVENT_HANDSHAKE_SUCCEEDED |
                              ZMQ_EVENT_HANDSHAKE_FAILED_NO_DETAIL |
                              ZMQ_EVENT_HANDSHAKE_FAILED_PROTOCOL | ZMQ_EVENT_HANDSHAKE_FAILED_AUTH;
constexpr int kRouterEvents = ZMQ_EVENT_DISCONNECTED;

}  // namespace

AddressRecord Engine::bind_lanes() {
  AddressRecord mine;
  mine.hosts = candidate_hosts(options_.host);
  // A configured host is the only one offered, so the ROUTERs listen there alone; otherwise on
  // every interface, since each peer may reach this host through another one.
  const std::string bind_host = options_.host.empty() ? "0.0.0.0" : options_.host;
  for (int lane = 0; lane < options_.lanes; ++lane) {
    ReceiveLane receive{MonitoredSocket(context_, ::zmq::socket_type::router), {}, 0};
    configure_router(receive.router.socket(), options_, tuning_);
    receive.router.start_monitor(context_, "router-" + std::to_string(lane), kRouterEvents);
    const std::string address = bind_endpoint(bind_host);
    try {
      receive.router.socket().bind(address);
    } catch (const ::zmq::error_t& error) {
      throw TransportError(ErrorKind::kBootstrap, who() + ": cannot listen on " + address + ": " +
                                                      error.what() + " (check TORCHWAN_HOST)");
    }
    const std::string bound = receive.router.socket().get(::zmq::sockopt::last_endpoint);
    mine.ports.push_back(static_cast<uint16_t>(std::stoi(bound.substr(bound.rfind(':') + 1))));
    receive_lanes_.push_back(std::move(receive));
  }
  return mine;
}

std::vector<AddressRecord> Engine::read_peer_addresses(Store& store, Clock::time_point deadline) {
  return read_address_records<AddressRecord>(
      store, who(), rank_, size_, address_key, deadline, options_.connect_timeout,
      decode_address_record, [this](int, const AddressRecord& record) -> std::string {
        if (record.ports.size() == static_cast<size_t>(options_.lanes)) return "";
        return "listens on " + std::to_string(record.ports.size()) + " lanes, this rank on " +
               std::to_string(options_.lanes) + " (every rank must use the same TORCHWAN_LANES)";
      });
}

void Engine::connect_lanes(const std::vector<AddressRecord>& addresses,
                           const std::vector<std::optional<size_t>>& reached) {
  send_lanes_.resize(static_cast<size_t>(size_ * options_.lanes));
  core::Hello hello = core::expected_hello(options_, size_);
  hello.rank = static_cast<uint32_t>(rank_);
  for (int peer = 0; peer < size_; ++peer) {
    if (peer == rank_) continue;
    const Carrier carrier = carriers_[static_cast<size_t>(peer)];
    for (int lane = 0; lane < options_.lanes; ++lane) {
      SendLane& link = send_lane(peer, lane);
      link.peer = peer;
      link.lane = lane;
      link.carrier = carrier;
      if (carrier == Carrier::kRelay) {
        link.relayed = true;
        link.endpoint = "the relay at " + relay_->endpoint();
        link.last_problem = "waiting for its hello through " + link.endpoint;
      } else if (carrier == Carrier::kTheirDealer) {
        // Nothing to dial: our hello, then our data, leave through our ROUTER once the peer's
        // DEALER said hello on this lane.
        link.routed = true;
        link.endpoint = "its connection to this rank";
        link.last_problem =
            "waiting for it to connect to this rank (it reached us, we cannot "
            "reach it)";
      } else {
        const auto& record = addresses[static_cast<size_t>(peer)];
        link.endpoint = record.endpoint(*reached[static_cast<size_t>(peer)], lane);
        link.dealer = MonitoredSocket(context_, ::zmq::socket_type::dealer);
        configure_dealer(link.dealer.socket(), options_, tuning_, rank_, lane,
                         /*carries_inbound=*/carrier == Carrier::kOurDealer);
        link.dealer.start_monitor(
            context_, "dealer-" + std::to_string(peer) + "-" + std::to_string(lane), kDealerEvents);
        link.dealer.socket().connect(link.endpoint);
        link.last_problem = "connecting to " + link.endpoint;
      }
      // The hello waits in the queue until the connection is up.
      hello.lane = static_cast<uint32_t>(lane);
      hello.proof = auth_.prove(peer, lane);
      link.queue.push_back(control_frame(hello));
      ++hellos_missing_;
    }
  }
}

OutgoingFrame Engine::control_frame(const core::ControlMessage& message) {
  const std::vector<uint8_t> body = core::encode_control(message);
  OutgoingFrame frame;
  frame.header.type = MessageType::kControl;
  frame.header.total_length = body.size();
  frame.header.length = body.size();
  frame.payload.emplace(body.data(), body.size());
  return frame;
}

void Engine::await_hellos(Clock::time_point deadline) {
  WaitProgress progress;
  const int peers = size_ - 1;
  while (true) {
    if (!bootstrap_failure_.empty()) {
      throw TransportError(ErrorKind::kBootstrap, bootstrap_failure_);
    }
    if (hellos_missing_ == 0) return;
    const auto left =
        std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now());
    if (left.count() <= 0) {
      throw TransportError(ErrorKind::kBootstrap,
                           who() + ": no hello within " +
                               std::to_string(options_.connect_timeout.count()) + " ms from " +
                               describe_missing_hellos());
    }
    progress.maybe_log([&] {
      return who() + ": connecting: " + std::to_string(peers - missing_hello_peers()) + "/" +
             std::to_string(peers) + " peers, waiting for " + describe_missing_hellos();
    });
    try {
      poll_once(std::min(left, std::chrono::milliseconds(100)) + std::chrono::milliseconds(1));
    } catch (const ::zmq::error_t& error) {
      if (error.num() == EINTR) continue;  // a signal for the application; just poll again
      throw TransportError(ErrorKind::kBootstrap,
                           who() + ": ZeroMQ failed during connection setup: " + error.what());
    }
  }
}

int Engine::missing_hello_peers() const {
  int missing = 0;
  for (int peer = 0; peer < size_; ++peer) {
    if (peer == rank_) continue;
    for (int lane = 0; lane < options_.lanes; ++lane) {
      if (!hello_seen_[static_cast<size_t>(peer * options_.lanes + lane)]) {
        ++missing;
        break;
      }
    }
  }
  return missing;
}

std::string Engine::describe_missing_hellos() const {
  std::vector<int> missing;
  std::string details;
  for (int peer = 0; peer < size_; ++peer) {
    if (peer == rank_) continue;
    for (int lane = 0; lane < options_.lanes; ++lane) {
      if (hello_seen_[static_cast<size_t>(peer * options_.lanes + lane)]) continue;
      missing.push_back(peer);
      const size_t index = static_cast<size_t>(peer * options_.lanes + lane);
      const auto& link = send_lanes_[index];
      details += "; rank " + std::to_string(peer) + ": " + link.last_problem;
      if (!refusals_[index].empty()) details += "; " + refusals_[index];
      break;
    }
  }
  return "ranks " + rank_list(missing) + details;
}

}  // namespace torchwan::transport::zmq_detail
