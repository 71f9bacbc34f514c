#include "relay/relay_server.h"

#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <chrono>
#include <vector>

#include "base/log.h"
#include "base/server_main.h"
#include "relay/relay_forwarder.h"
#include "relay/relay_tcp.h"
#include "relay/relay_wire.h"
#include "transport/secure/control_security.h"
#include "transport/secure/zap_handler.h"

namespace torchwan::relay {
namespace {

// How long the loop sleeps when nothing is queued; with bytes queued it only yields briefly.
constexpr auto kIdlePoll = std::chrono::milliseconds(20);
constexpr auto kBusyPoll = std::chrono::milliseconds(1);
// Added to the largest frame for ZeroMQ's size limit (CURVE's MESSAGE command adds ~33 bytes).
constexpr size_t kFrameSlackBytes = 256;

int bound_port(::zmq::socket_t& socket) {
  const std::string endpoint = socket.get(::zmq::sockopt::last_endpoint);
  return std::stoi(endpoint.substr(endpoint.rfind(':') + 1));
}

}  // namespace

RelayServer::RelayServer(RelayOptions options)
    : options_(std::move(options)), log_(layer_logger("relay")), context_(1) {
  validate(options_);
}

RelayServer::~RelayServer() {
  stop();
  zap_.reset();
}

void RelayServer::start() {
  if (running()) return;
  ::zmq::socket_t router(context_, ::zmq::socket_type::router);
  router.set(::zmq::sockopt::linger, 0);
  // Sends to a vanished member fail (EHOSTUNREACH) instead of being dropped silently, and a full
  // destination says EAGAIN, so the relay queues instead of losing bytes.
  router.set(::zmq::sockopt::router_mandatory, 1);
  // ZeroMQ closes a connection that sends a frame above this before the relay allocates for it.
  // Under CURVE the limit applies to the encrypted frame, which is larger than the payload by the
  // box's overhead: the slack keeps a full chunk legal.
  router.set(::zmq::sockopt::maxmsgsize,
             static_cast<int64_t>(std::max<size_t>(kMaxHeaderBytes, options_.max_chunk_bytes) +
                                  kFrameSlackBytes));
  // Message counts, not bytes: the windows bound the bytes; these keep ZeroMQ's own pipes short
  // so that bytes wait in the relay's queue, where they are counted.
  router.set(::zmq::sockopt::sndhwm, 64);
  router.set(::zmq::sockopt::rcvhwm, 64);
  // Closes connections whose other end vanished without a reset (NAT state lost, host down).
  router.set(::zmq::sockopt::heartbeat_ivl, 5000);
  router.set(::zmq::sockopt::heartbeat_timeout, 15000);
  if (options_.secret) {
    if (!zap_) {
      zap_ =
          std::make_unique<elastic::ZapHandler>(context_, options_.secret->curve_keys().public_key);
    }
    elastic::make_curve_server(router, *options_.secret);
    router.set(::zmq::sockopt::zap_domain, "torchwan-relay");
  }
  const std::string port = options_.port == 0 ? "*" : std::to_string(options_.port);
  router.bind("tcp://" + options_.host + ":" + port);
  port_ = bound_port(router);
  stopping_ = false;
  log_->info(
      "relay: listening on {}:{}, window {} bytes, at most {} streams, congestion control {}",
      options_.host, port_, options_.window_bytes, effective_max_streams(options_),
      options_.congestion.empty() ? "of the system" : options_.congestion);
  if (options_.secret) {
    log_->info("relay: CURVE authentication on; members need the job secret (fingerprint {})",
               options_.secret->fingerprint());
  } else {
    log_->warn("relay: no secret: anyone who reaches port {} may register and forward bytes",
               port_);
  }
  thread_ = std::thread([this, socket = std::move(router)]() mutable {
    try {
      serve(std::move(socket));
    } catch (const std::exception& error) {
      log_->error("relay: serving loop failed: {}", error.what());
    }
  });
}

void RelayServer::stop() {
  if (!running()) return;
  stopping_ = true;
  thread_.join();
  log_->info("relay: stopped serving port {}", port_);
}

std::string RelayServer::endpoint() const { return base::local_endpoint(options_.host, port_); }

RelayStats RelayServer::stats() const {
  std::lock_guard<std::mutex> lock(stats_mutex_);
  return stats_;
}

void RelayServer::serve(::zmq::socket_t router) {
  const auto publish = [this](const RelayStats& stats) {
    std::lock_guard<std::mutex> lock(stats_mutex_);
    stats_ = stats;
  };
  RelayForwarder forwarder(options_, router, log_, publish);
  // Declared after the router so that it stops watching before the router closes.
  elastic::SocketMonitor monitor(context_, router, fmt::format("relay-{}", port_));
  std::vector<::zmq::pollitem_t> items = {{router.handle(), 0, ZMQ_POLLIN, 0},
                                          {monitor.socket().handle(), 0, ZMQ_POLLIN, 0}};
  while (!stopping_) {
    ::zmq::poll(items, forwarder.busy() ? kBusyPoll : kIdlePoll);
    watch_handshakes(monitor, forwarder);
    forwarder.read_waiting();
    forwarder.flush();
    publish(forwarder.stats());  // also what changed without a frame leaving (a dropped client)
  }
}

void RelayServer::watch_handshakes(elastic::SocketMonitor& monitor, RelayForwarder& forwarder) {
  while (const auto event = monitor.next()) {
    if (event->event == ZMQ_EVENT_ACCEPTED && !options_.congestion.empty()) {
      // The relay sends from the accepted end, so this paces the second hop of every stream.
      // The descriptor is ZeroMQ's and open: a close would have queued an event after this one.
      const std::string problem = set_congestion_control(event->value, options_.congestion);
      if (!problem.empty() && !congestion_warned_) {
        congestion_warned_ = true;
        log_->warn("relay: connections keep the system's congestion control: {}", problem);
      }
    }
    if (event->event == ZMQ_EVENT_HANDSHAKE_FAILED_AUTH ||
        event->event == ZMQ_EVENT_HANDSHAKE_FAILED_PROTOCOL ||
        event->event == ZMQ_EVENT_HANDSHAKE_FAILED_NO_DETAIL) {
      forwarder.count_handshake_failure();
      log_->warn("relay: a connection to {} failed its handshake: {}{}", event->address,
                 elastic::describe_handshake_failure(*event),
                 options_.secret ? " (a client without this job's secret?)"
                                 : " (a client with a secret, while this relay has none?)");
    }
  }
}

}  // namespace torchwan::relay
