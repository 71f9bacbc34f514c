// Connection setup of the UCX engine: address exchange through the store, one endpoint per
// (peer, lane), and a hello on every lane that proves each endpoint reaches the rank it should.
#include <algorithm>
#include <map>
#include <set>

#include "base/deadline.h"
#include "transport/core/control_wire.h"
#include "transport/errors.h"
#include "transport/peer_records.h"
#include "transport/socket_tuning.h"
#include "transport/ucx/ucx_engine.h"
#include "transport/ucx/ucx_wire.h"
#include "transport/wait_progress.h"

namespace torchwan::transport::ucx {

void Engine::connect(Store& store, std::chrono::steady_clock::time_point deadline) {
  AddressRecord mine;
  mine.rank = rank_;
  mine.stripe_min_bytes = options_.stripe_min_bytes;
  mine.chunk_bytes = options_.chunk_bytes;
  for (int lane = 0; lane < options_.lanes; ++lane) {
    mine.lane_addresses.push_back(local_address(lane));
  }
  // The auth record goes first: a peer that found the addresses finds it too.
  auth_.publish(store);
  store.set(address_key(rank_), encode_address_record(mine));

  auto addresses = fetch_peer_addresses(store, deadline);
  auth_.collect(store, deadline);
  create_endpoints(addresses);
  exchange_hellos(deadline);
  tune_connections();
  connected_ = true;
  start_liveness();
  logger_->debug("ucx rank {}: connected to {} peers on {} lanes each", rank_, size_ - 1,
                 options_.lanes);
}

void Engine::tune_connections() {
  const std::string congestion = plan_socket_tuning(options_, read_kernel_net_limits()).congestion;
  if (congestion.empty()) return;
  // Every hello has arrived, so every lane's connection in both directions exists by now.
  const std::vector<int> connections = sockets_before_workers_.new_tcp_connections();
  std::string problems;
  for (int fd : connections) {
    const std::string problem = apply_socket_tuning(fd, SocketTuning{0, 0, congestion});
    if (!problem.empty()) problems = problem;
  }
  if (!problems.empty()) {
    logger_->warn("ucx rank {}: could not set congestion control on a data connection: {}", rank_,
                  problems);
  }
  logger_->debug("ucx rank {}: congestion control {} on {} connections", rank_, congestion,
                 connections.size());
}

std::vector<uint8_t> Engine::local_address(int lane) {
  ucp_worker_attr_t attributes{};
  attributes.field_mask = UCP_WORKER_ATTR_FIELD_ADDRESS;
  check_ucs(ucp_worker_query(worker(lane), &attributes), "ucp_worker_query");
  const auto* bytes = reinterpret_cast<const uint8_t*>(attributes.address);
  std::vector<uint8_t> address(bytes, bytes + attributes.address_length);
  ucp_worker_release_address(worker(lane), attributes.address);
  return address;
}

std::vector<std::vector<std::vector<uint8_t>>> Engine::fetch_peer_addresses(
    Store& store, std::chrono::steady_clock::time_point deadline) {
  std::vector<std::vector<std::vector<uint8_t>>> addresses(static_cast<size_t>(size_));
  auto on_record = [&](int peer, std::vector<uint8_t> bytes) {
    std::string why;
    std::optional<AddressRecord> record = decode_address_record(bytes, why);
    if (record && record->rank != peer) {
      why = "it claims to be rank " + std::to_string(record->rank);
      record.reset();
    }
    if (!record) {
      throw TransportError(ErrorKind::kBootstrap,
                           "ucx rank " + std::to_string(rank_) + ": the address record of rank " +
                               std::to_string(peer) + " under '" + address_key(peer) +
                               "' is invalid: " + why,
                           peer);
    }
    if (record->lane_addresses.size() != static_cast<size_t>(options_.lanes)) {
      throw TransportError(ErrorKind::kBootstrap,
                           "ucx rank " + std::to_string(rank_) + ": rank " + std::to_string(peer) +
                               " uses " + std::to_string(record->lane_addresses.size()) +
                               " lanes, this rank " + std::to_string(options_.lanes) +
                               " (TORCHWAN_LANES must match on every rank)",
                           peer);
    }
    if (record->stripe_min_bytes != options_.stripe_min_bytes ||
        record->chunk_bytes != options_.chunk_bytes) {
      throw TransportError(
          ErrorKind::kBootstrap,
          "ucx rank " + std::to_string(rank_) + ": rank " + std::to_string(peer) +
              " cuts messages differently (stripe_min_bytes " +
              std::to_string(record->stripe_min_bytes) + ", chunk_bytes " +
              std::to_string(record->chunk_bytes) + "; this rank " +
              std::to_string(options_.stripe_min_bytes) + ", " +
              std::to_string(options_.chunk_bytes) +
              "); TORCHWAN_STRIPE_MIN_BYTES and TORCHWAN_CHUNK_BYTES must match on every rank",
          peer);
    }
    addresses[static_cast<size_t>(peer)] = std::move(record->lane_addresses);
  };
  const std::vector<int> missing =
      read_peer_records(store, rank_, size_, address_key, deadline, on_record);
  if (!missing.empty()) {
    throw TransportError(ErrorKind::kBootstrap,
                         "ucx rank " + std::to_string(rank_) + ": rank(s) " + rank_list(missing) +
                             " did not publish their address (store key 'tw/ucx/<rank>') within " +
                             std::to_string(options_.connect_timeout.count()) +
                             " ms; are they running and using the same store?",
                         missing.front());
  }
  return addresses;
}

void Engine::create_endpoints(const std::vector<std::vector<std::vector<uint8_t>>>& addresses) {
  for (int peer = 0; peer < size_; ++peer) {
    if (peer == rank_) continue;
    for (int lane = 0; lane < options_.lanes; ++lane) {
      EndpointSlot& slot = endpoint(peer, lane);
      ucp_ep_params_t params{};
      params.field_mask = UCP_EP_PARAM_FIELD_REMOTE_ADDRESS | UCP_EP_PARAM_FIELD_ERR_HANDLING_MODE |
                          UCP_EP_PARAM_FIELD_ERR_HANDLER;
      params.address = reinterpret_cast<const ucp_address_t*>(
          addresses[static_cast<size_t>(peer)][static_cast<size_t>(lane)].data());
      // PEER mode: a dead peer fails its requests and calls on_endpoint_error instead of hanging.
      params.err_mode = UCP_ERR_HANDLING_MODE_PEER;
      params.err_handler.cb = &Engine::on_endpoint_error;
      params.err_handler.arg = &slot;
      ucp_ep_h ep = nullptr;
      check_ucs(ucp_ep_create(worker(lane), &params, &ep),
                "ucp_ep_create to rank " + std::to_string(peer) + " lane " + std::to_string(lane),
                ErrorKind::kBootstrap);
      slot.ep = ep;
    }
  }
}

void Engine::exchange_hellos(std::chrono::steady_clock::time_point deadline) {
  const int lanes = options_.lanes;
  hello_in_.resize(static_cast<size_t>(size_) * static_cast<size_t>(lanes));
  // One hello per (peer, lane): each proves the secret over that peer's nonce.
  hello_out_.resize(static_cast<size_t>(size_) * static_cast<size_t>(lanes));
  for (int peer = 0; peer < size_; ++peer) {
    for (int lane = 0; lane < lanes && peer != rank_; ++lane) {
      core::Hello hello = core::expected_hello(options_, size_);
      hello.rank = static_cast<uint32_t>(rank_);
      hello.lane = static_cast<uint32_t>(lane);
      hello.proof = auth_.prove(peer, lane);
      hello_out_[static_cast<size_t>(peer * lanes + lane)] = core::encode_control(hello);
    }
  }

  struct Exchange {
    int peer;
    int lane;
    std::shared_ptr<Request> sent;
    std::shared_ptr<Request> received;
  };
  std::vector<Exchange> exchanges;
  for (int peer = 0; peer < size_; ++peer) {
    if (peer == rank_) continue;
    for (int lane = 0; lane < lanes; ++lane) {
      Exchange exchange{peer, lane, std::make_shared<Request>(peer, 0, core::kControlBytes),
                        std::make_shared<Request>(peer, 0, core::kControlBytes)};
      auto& inbox = hello_in_[static_cast<size_t>(peer * lanes + lane)];
      inbox.assign(core::kControlBytes, 0);
      launch_internal(exchange.received, false, peer, lane, inbox, hello_wire_tag(peer, lane));
      launch_internal(exchange.sent, true, peer, lane,
                      hello_out_[static_cast<size_t>(peer * lanes + lane)],
                      hello_wire_tag(rank_, lane));
      exchanges.push_back(std::move(exchange));
    }
  }

  auto all_done = [&] {
    return std::all_of(exchanges.begin(), exchanges.end(), [](const Exchange& exchange) {
      return exchange.sent->done() && exchange.received->done();
    });
  };
  WaitProgress waiting;
  while (!all_done() && std::chrono::steady_clock::now() < deadline) {
    waiting.maybe_log([&] {
      std::set<int> silent;
      for (const Exchange& exchange : exchanges) {
        if (!exchange.sent->done() || !exchange.received->done()) silent.insert(exchange.peer);
      }
      return "ucx rank " + std::to_string(rank_) +
             ": connecting: " + std::to_string(size_ - 1 - static_cast<int>(silent.size())) + "/" +
             std::to_string(size_ - 1) + " peers answered the hello, waiting for rank(s) " +
             rank_list(silent);
    });
    if (!progress()) {
      wait_for_event(std::min(base::time_left(deadline), std::chrono::milliseconds(50)));
    }
  }

  std::set<int> silent;
  std::map<int, std::string> rejected;
  for (const Exchange& exchange : exchanges) {
    if (!exchange.sent->done() || !exchange.received->done()) {
      silent.insert(exchange.peer);
      continue;
    }
    for (const auto& request : {exchange.sent, exchange.received}) {
      if (std::exception_ptr error = request->error()) {
        try {
          std::rethrow_exception(error);
        } catch (const std::exception& failure) {
          rejected.emplace(exchange.peer, failure.what());
        }
      }
    }
    if (rejected.count(exchange.peer) != 0) continue;
    const auto& inbox = hello_in_[static_cast<size_t>(exchange.peer * lanes + exchange.lane)];
    std::string why;
    try {
      const core::ControlMessage message = core::decode_control(inbox);
      const auto* hello = std::get_if<core::Hello>(&message);
      if (hello == nullptr) {
        why = "it sent " + core::describe(message) + " instead of its hello";
      } else {
        why = core::check_hello(*hello, exchange.peer, exchange.lane,
                                core::expected_hello(options_, size_));
        if (why.empty() && !auth_.verify(exchange.peer, exchange.lane, hello->proof)) {
          why = "its hello does not prove the job secret for this job and epoch (wrong job secret)";
        }
      }
    } catch (const core::WireError& malformed) {
      why = malformed.what();
    }
    if (!why.empty()) rejected.emplace(exchange.peer, why);
  }
  if (silent.empty() && rejected.empty()) return;

  std::string message = "ucx rank " + std::to_string(rank_) + ": connection setup failed:";
  if (!silent.empty()) {
    message += " rank(s) " + rank_list(silent) + " did not answer the hello within " +
               std::to_string(options_.connect_timeout.count()) +
               " ms (address unreachable from here? firewall?);";
  }
  for (const auto& [peer, why] : rejected) {
    message += " rank " + std::to_string(peer) + " rejected: " + why + ";";
  }
  message.pop_back();
  const int first = !silent.empty() ? *silent.begin() : rejected.begin()->first;
  throw TransportError(ErrorKind::kBootstrap, message, first);
}

}  // namespace torchwan::transport::ucx
