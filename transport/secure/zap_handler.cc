#include "transport/secure/zap_handler.h"

#include <sodium.h>
#include <spdlog/spdlog.h>

#include <stdexcept>
#include <vector>

#include "base/log.h"

namespace torchwan::elastic {
namespace {

constexpr const char* kZapEndpoint = "inproc://zeromq.zap.01";
// Bounds how late the thread notices stop(); the poll is otherwise idle.
constexpr auto kPollInterval = std::chrono::milliseconds(50);

}  // namespace

ZapHandler::ZapHandler(::zmq::context_t& context, const std::string& allowed_public_key)
    : log_(layer_logger("elastic")), socket_(context, ::zmq::socket_type::rep) {
  if (allowed_public_key.size() != 40 ||
      zmq_z85_decode(allowed_.data(), allowed_public_key.c_str()) == nullptr) {
    throw std::invalid_argument("torchwan: ZAP handler needs a Z85 CURVE public key");
  }
  socket_.set(::zmq::sockopt::linger, 0);
  socket_.bind(kZapEndpoint);
  thread_ = std::thread([this] { serve(); });
}

ZapHandler::~ZapHandler() {
  stopping_ = true;
  if (thread_.joinable()) thread_.join();
}

void ZapHandler::serve() {
  std::vector<::zmq::pollitem_t> items = {{socket_.handle(), 0, ZMQ_POLLIN, 0}};
  while (!stopping_) {
    ::zmq::poll(items, kPollInterval);
    if ((items[0].revents & ZMQ_POLLIN) == 0) continue;
    // Request (ZAP 1.0): version, request id, domain, address, routing id, mechanism, credentials.
    std::vector<::zmq::message_t> request;
    do {
      ::zmq::message_t part;
      if (!socket_.recv(part, ::zmq::recv_flags::none)) break;
      request.push_back(std::move(part));
    } while (request.back().more());
    // A REP socket must answer every request, even one libzmq would never send.
    ::zmq::message_t request_id;
    if (request.size() > 1) request_id.copy(request[1]);
    const std::string address = request.size() > 3 ? request[3].to_string() : "";
    const std::string mechanism = request.size() > 5 ? request[5].to_string() : "";
    bool allowed = false;
    const char* why = "";
    if (request.size() < 6 || request[0].to_string() != "1.0") {
      why = "malformed ZAP request";
    } else if (mechanism != "CURVE") {
      why = "not a CURVE connection";
    } else if (request.size() != 7 || request[6].size() != allowed_.size()) {
      why = "malformed CURVE credentials";
    } else if (sodium_memcmp(request[6].data(), allowed_.data(), allowed_.size()) != 0) {
      why = "client key is not derived from this job's secret (wrong secret)";
    } else {
      allowed = true;
    }
    if (!allowed) {
      ++rejected_;
      log_->warn("coordinator: refused a connection from {}: {}", address, why);
    }
    const std::string status = allowed ? "200" : "400";
    const std::string text = allowed ? "OK" : "authentication failed";
    socket_.send(::zmq::buffer(std::string("1.0")), ::zmq::send_flags::sndmore);
    socket_.send(request_id, ::zmq::send_flags::sndmore);
    socket_.send(::zmq::buffer(status), ::zmq::send_flags::sndmore);
    socket_.send(::zmq::buffer(text), ::zmq::send_flags::sndmore);
    socket_.send(::zmq::buffer(std::string()), ::zmq::send_flags::sndmore);  // user id
    socket_.send(::zmq::buffer(std::string()), ::zmq::send_flags::none);     // metadata
  }
}

}  // namespace torchwan::elastic
