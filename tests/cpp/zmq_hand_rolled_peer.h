// A stand-in for rank 1 of a two-rank, one-lane ZeroMQ group, played by hand to send what a real
// rank never would: hellos of another version, group size or epoch, hellos without the secret's
// proof, malformed pieces. Rank 0 is a real ZmqTransport bootstrapping through the same store.
#pragma once

#include <chrono>
#include <cstdint>
#include <optional>
#include <stdexcept>
#include <string>
#include <vector>
#include <zmq.hpp>

#include "transport/core/control_wire.h"
#include "transport/options.h"
#include "transport/secure/data_auth.h"
#include "transport/store.h"
#include "transport/zmq/zmq_records.h"
#include "transport/zmq/zmq_wire.h"

namespace torchwan::testing {

class HandRolledPeer {
 public:
  // Publishes rank 1's auth record (holding `options`' secret, if it names one) and address, then
  // waits for rank 0's; connects at once.
  HandRolledPeer(transport::Store& store, const transport::TransportOptions& options)
      : auth_(options, 1, 2, "hand-rolled rank 1"), router_(context_, ::zmq::socket_type::router) {
    namespace wire = transport::zmq_detail;
    router_.set(::zmq::sockopt::linger, 0);
    router_.bind("tcp://127.0.0.1:*");
    auth_.publish(store);
    const std::string bound = router_.get(::zmq::sockopt::last_endpoint);
    const auto port = static_cast<uint16_t>(std::stoi(bound.substr(bound.rfind(':') + 1)));
    store.set(wire::address_key(1), wire::encode_address_record({{"127.0.0.1"}, {port}}));
    // It dials rank 0 below, so it claims to have reached it: the pair is direct.
    store.set(wire::reach_key(1), wire::encode_reach_record({1, {1, 0}}));
    auth_.collect(store, std::chrono::steady_clock::now() + std::chrono::seconds(5));
    std::string why;
    const auto record =
        wire::decode_address_record(store.get(wire::address_key(0), std::chrono::seconds(5)), why);
    if (!record) throw std::runtime_error("rank 0's address record: " + why);
    endpoint_ = record->endpoint(0, 0);
    reconnect();
  }

  // A new connection under rank 1's lane-0 routing id; the previous one closes.
  void reconnect() {
    dealer_.emplace(context_, ::zmq::socket_type::dealer);
    dealer_->set(::zmq::sockopt::linger, 0);
    dealer_->set(::zmq::sockopt::routing_id,
                 ::zmq::buffer(transport::zmq_detail::routing_id(1, 0)));
    dealer_->connect(endpoint_);
  }
  void disconnect() { dealer_.reset(); }

  // One ZeroMQ message of `frames` on the current connection.
  void send_frames(const std::vector<std::vector<uint8_t>>& frames) {
    for (size_t i = 0; i < frames.size(); ++i) {
      dealer_->send(::zmq::buffer(frames[i]),
                    i + 1 < frames.size() ? ::zmq::send_flags::sndmore : ::zmq::send_flags::none);
    }
  }
  // A header (stamped with this job's hash) and its payload.
  void send(const transport::zmq_detail::Header& header, const std::vector<uint8_t>& payload) {
    send_frames(frames(header, payload));
  }

  // The frames of `hello`, with the secret's proof when `proven` (it needs a secret to prove),
  // its control message claiming protocol `version`.
  std::vector<std::vector<uint8_t>> hello_frames(
      transport::core::Hello hello, bool proven = true,
      uint16_t version = transport::core::kWireVersion) const {
    namespace wire = transport::zmq_detail;
    if (proven && auth_.enabled()) hello.proof = auth_.prove(0, 0);
    auto body = transport::core::encode_control(hello);
    body[4] = static_cast<uint8_t>(version);  // the little-endian version after the magic
    body[5] = static_cast<uint8_t>(version >> 8);
    wire::Header header;
    header.type = wire::MessageType::kControl;
    header.total_length = body.size();
    header.length = body.size();
    return frames(header, body);
  }
  // What a real rank 1 says first: its rank and lane, the group's size and lane count, and the
  // striping settings of `options`.
  static transport::core::Hello valid_hello(
      const transport::TransportOptions& options = transport::TransportOptions{}) {
    transport::core::Hello hello;
    hello.rank = 1;
    hello.size = 2;
    hello.lane = 0;
    hello.lanes = 1;
    hello.chunk_bytes = options.chunk_bytes;
    hello.stripe_min_bytes = options.stripe_min_bytes;
    return hello;
  }

 private:
  // The two frames of one message: `header`, stamped with this job's hash, and `payload`.
  std::vector<std::vector<uint8_t>> frames(transport::zmq_detail::Header header,
                                           const std::vector<uint8_t>& payload) const {
    header.job = auth_.job_hash();
    const auto bytes = transport::zmq_detail::encode_header(header);
    return {std::vector<uint8_t>(bytes.begin(), bytes.end()), payload};
  }

  transport::DataAuth auth_;
  ::zmq::context_t context_;
  ::zmq::socket_t router_;
  std::optional<::zmq::socket_t> dealer_;
  std::string endpoint_;
};

}  // namespace torchwan::testing
