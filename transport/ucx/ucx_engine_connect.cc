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
  mine.interface_addresses = interface_addresses();
  // The auth record goes first: a peer that found the addresses finds it too.
  auth_.publish(store);
  store.set(address_key(rank_), encode_address_record(mine));

  const std::vector<AddressRecord> records = fetch_peer_addresses(store, deadline);
  auth_.collect(store, deadline);
  rungs_ = establish(store, records, deadline);
  tune_connections();
  connected_ = true;
  start_liveness();
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

std::vector<AddressRecord> Engine::fetch_peer_addresses(
    Store& store, std::chrono::steady_clock::time_point deadline) {
  return read_address_records<AddressRecord>(
      store, "ucx rank " + std::to_string(rank_), rank_, size_, address_key, deadline,
      options_.connect_timeout, decode_address_record,
      [this](int peer, const AddressRecord& record) -> std::string {
        if (record.rank != peer)
          return "published a record claiming to be rank " + std::to_string(record.rank);
        if (record.lane_addresses.size() != static_cast<size_t>(options_.lanes)) {
          return "uses " + std::to_string(record.lane_addresses.size()) + " lanes, this rank " +
                 std::to_string(options_.lanes) + " (TORCHWAN_LANES must match on every rank)";
        }
        if (record.stripe_min_bytes != options_.stripe_min_bytes ||
            record.chunk_bytes != options_.chunk_bytes) {
          return "cuts messages differently (stripe_min_bytes " +
                 std::to_string(record.stripe_min_bytes) + ", chunk_bytes " +
                 std::to_string(record.chunk_bytes) + "; this rank " +
                 std::to_string(options_.stripe_min_bytes) + ", " +
                 std::to_string(options_.chunk_bytes) +
                 "); TORCHWAN_STRIPE_MIN_BYTES and TORCHWAN_CHUNK_BYTES must match on every rank";
        }
        return "";
      });
}

}  // namespace torchwan::transport::ucx
