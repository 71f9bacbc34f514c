#include "elastic/coordinator.h"

#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include <vector>

#include "base/server_main.h"
#include "elastic/log.h"
#include "elastic/membership_wire.h"
#include "transport/secure/control_security.h"

namespace torchwan::elastic {
namespace {

// Bounds how late a timeout is noticed; membership timescales are hundreds of milliseconds.
constexpr auto kPollInterval = std::chrono::milliseconds(10);

int bound_port(::zmq::socket_t& socket) {
  const std::string endpoint = socket.get(::zmq::sockopt::last_endpoint);
  return std::stoi(endpoint.substr(endpoint.rfind(':') + 1));
}

}  // namespace

Coordinator::Coordinator(CoordinatorOptions options)
    : options_(std::move(options)), log_(elastic_logger()), context_(1) {}

Coordinator::~Coordinator() {
  stop();
  zap_.reset();
}

void Coordinator::start() {
  if (running()) return;
  ::zmq::socket_t router(context_, ::zmq::socket_type::router);
  router.set(::zmq::sockopt::linger, 0);
  // Replies to a peer that has gone raise EHOSTUNREACH instead of vanishing silently, so the
  // drop is logged.
  router.set(::zmq::sockopt::router_mandatory, 1);
  // ZeroMQ itself closes the connection of a peer that sends a frame above the protocol cap,
  // before we ever allocate for it.
  router.set(::zmq::sockopt::maxmsgsize, static_cast<int64_t>(kHeaderBytes + kMaxPayloadBytes));
  if (options_.secret) {
    require_curve();
    // The handler must be bound before the first connection's handshake asks it.
    if (!zap_)
      zap_ = std::make_unique<ZapHandler>(context_, options_.secret->curve_keys().public_key);
    make_curve_server(router, *options_.secret);
  }
  const std::string port = options_.port == 0 ? "*" : std::to_string(options_.port);
  router.bind("tcp://" + options_.host + ":" + port);
  port_ = bound_port(router);
  {
    std::lock_guard<std::mutex> lock(mutex_);
    core_ = std::make_unique<CoordinatorCore>(options_, Clock::now());
  }
  stopping_ = false;
  log_->info("coordinator: listening on {}:{}", options_.host, port_);
  if (options_.secret) {
    log_->info("coordinator: CURVE authentication on; members need the job secret (fingerprint {})",
               options_.secret->fingerprint());
  } else {
    log_->warn(
        "coordinator: no --secret-file: the job is open to anyone who reaches port {} (they can "
        "join, report members lost, or stop the job); use a job secret outside tests",
        port_);
  }
  const int monitor_id = ++monitors_;
  thread_ = std::thread([this, monitor_id, socket = std::move(router)]() mutable {
    serve(std::move(socket), monitor_id);
  });
}

void Coordinator::stop() {
  if (!running()) return;
  stopping_ = true;
  thread_.join();
  log_->info("coordinator: stopped serving port {}", port_);
}

std::string Coordinator::endpoint() const { return base::local_endpoint(options_.host, port_); }

CoordinatorSnapshot Coordinator::snapshot() const {
  std::lock_guard<std::mutex> lock(mutex_);
  return core_ ? core_->snapshot() : CoordinatorSnapshot{};
}

void Coordinator::serve(::zmq::socket_t router, int monitor_id) {
  // Declared after the router so that it stops watching before the router closes.
  SocketMonitor monitor(context_, router, fmt::format("coordinator-{}", monitor_id));
  std::vector<::zmq::pollitem_t> items = {{router.handle(), 0, ZMQ_POLLIN, 0},
                                          {monitor.socket().handle(), 0, ZMQ_POLLIN, 0}};
  while (!stopping_) {
    ::zmq::poll(items, kPollInterval);
    while (const auto event = monitor.next()) {
      if (event->event == ZMQ_EVENT_HANDSHAKE_FAILED_AUTH ||
          event->event == ZMQ_EVENT_HANDSHAKE_FAILED_PROTOCOL ||
          event->event == ZMQ_EVENT_HANDSHAKE_FAILED_NO_DETAIL) {
        // libzmq reports these on the listening endpoint; the ZAP handler logs the peer address
        // of the connections it refuses.
        log_->warn("coordinator: a connection to {} failed its handshake: {}{}", event->address,
                   describe_handshake_failure(*event),
                   options_.secret ? " (a client without this job's secret?)"
                                   : " (a client with a secret, while this coordinator has none?)");
      }
    }
    // Drain everything that arrived, then decide on timeouts once.
    while (true) {
      std::vector<::zmq::message_t> parts;
      ::zmq::message_t part;
      if (!router.recv(part, ::zmq::recv_flags::dontwait)) break;
      parts.push_back(std::move(part));
      while (parts.back().more()) {
        ::zmq::message_t next;
        (void)router.recv(next, ::zmq::recv_flags::none);
        parts.push_back(std::move(next));
      }
      std::lock_guard<std::mutex> lock(mutex_);
      const std::string routing_id = parts.front().to_string();
      if (parts.size() != 2) {
        // Our members send exactly one frame; the ROUTER adds the routing id.
        core_->reject_frame(routing_id,
                            "expected one frame, got " + std::to_string(parts.size() - 1));
        continue;
      }
      core_->handle(routing_id, {static_cast<const uint8_t*>(parts[1].data()), parts[1].size()},
                    Clock::now());
    }
    {
      std::lock_guard<std::mutex> lock(mutex_);
      core_->tick(Clock::now());
    }
    send_all(router);
  }
}

void Coordinator::send_all(::zmq::socket_t& router) {
  std::vector<Outgoing> outgoing;
  {
    std::lock_guard<std::mutex> lock(mutex_);
    outgoing = core_->take_outgoing();
  }
  for (auto& message : outgoing) {
    try {
      // Never block the coordinator on one slow member: a dropped message is re-sent when the
      // member's next heartbeat shows it is behind.
      if (!router.send(::zmq::buffer(message.routing_id),
                       ::zmq::send_flags::sndmore | ::zmq::send_flags::dontwait) ||
          !router.send(::zmq::buffer(message.frame), ::zmq::send_flags::dontwait)) {
        log_->warn("coordinator: send queue full; dropped a message");
      }
    } catch (const ::zmq::error_t& error) {
      log_->info("coordinator: could not reply to a departed peer: {}", error.what());
    }
  }
}

}  // namespace torchwan::elastic
