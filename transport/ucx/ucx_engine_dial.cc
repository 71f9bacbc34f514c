// The connection ladder of the UCX engine (see "Connection ladder" in ucx_engine.h): who dials
// whom, when a dial counts as failed, and the store signals that turn a pair around.
//
// Store keys (under the group's prefix):
//   tw/ucx/ready/<r>           rank r posted its hello receives and progresses its workers, so a
//                              dial to it that stays unanswered for dial_timeout has failed
//   tw/ucx/dial-back/<a>/<b>   rank b could not dial rank a: a dials b instead
//   tw/ucx/no-route/<b>/<a>    rank a could not dial rank b back either (the value says why)
#include <algorithm>
#include <map>
#include <set>
#include <string>

#include "base/deadline.h"
#include "transport/core/control_wire.h"
#include "transport/errors.h"
#include "transport/peer_records.h"
#include "transport/ucx/ucx_engine.h"
#include "transport/wait_progress.h"

namespace torchwan::transport::ucx {

namespace {

using Clock = std::chrono::steady_clock;

// How often a rank looks at the store for the signals of the peers it still waits for: each look
// is a round trip to the store, which may be far away.
constexpr auto kStorePollInterval = std::chrono::milliseconds(200);

std::string ready_key(int rank) { return "tw/ucx/ready/" + std::to_string(rank); }
std::string dial_back_key(int dialer, int asker) {
  return "tw/ucx/dial-back/" + std::to_string(dialer) + "/" + std::to_string(asker);
}
std::string no_route_key(int to, int from) {
  return "tw/ucx/no-route/" + std::to_string(to) + "/" + std::to_string(from);
}

std::string text_of(const std::vector<uint8_t>& bytes) { return {bytes.begin(), bytes.end()}; }
std::vector<uint8_t> bytes_of(const std::string& text) { return {text.begin(), text.end()}; }

std::string describe_addresses(const std::vector<std::string>& addresses) {
  return addresses.empty() ? "no interface address" : comma_list(addresses);
}

bool request_failed(const std::shared_ptr<Request>& request) {
  return request && request->done() && request->error() != nullptr;
}

bool request_ok(const std::shared_ptr<Request>& request) {
  return request && request->done() && request->error() == nullptr;
}

std::string error_text(const std::shared_ptr<Request>& request) {
  try {
    std::rethrow_exception(request->error());
  } catch (const std::exception& error) {
    return error.what();
  }
}

}  // namespace

ucs_status_t Engine::create_endpoint(int peer, int lane, const AddressRecord& record,
                                     ucp_ep_h& ep) {
  EndpointSlot& slot = endpoint(peer, lane);
  ucp_ep_params_t params{};
  params.field_mask = UCP_EP_PARAM_FIELD_REMOTE_ADDRESS | UCP_EP_PARAM_FIELD_ERR_HANDLING_MODE |
                      UCP_EP_PARAM_FIELD_ERR_HANDLER;
  params.address = reinterpret_cast<const ucp_address_t*>(
      record.lane_addresses[static_cast<size_t>(lane)].data());
  // PEER mode: a dead peer fails its requests and calls on_endpoint_error instead of hanging.
  params.err_mode = UCP_ERR_HANDLING_MODE_PEER;
  params.err_handler.cb = &Engine::on_endpoint_error;
  params.err_handler.arg = &slot;
  ep = nullptr;
  return ucp_ep_create(worker(lane), &params, &ep);
}

void Engine::send_hello(int peer, int lane, PeerDial& dial) {
  auto& sent = dial.sent[static_cast<size_t>(lane)];
  sent = std::make_shared<Request>(peer, 0, core::kControlBytes);
  launch_internal(sent, true, peer, lane,
                  hello_out_[static_cast<size_t>(peer * options_.lanes + lane)],
                  hello_wire_tag(rank_, lane));
}

bool Engine::dial(int peer, PeerDial& dial, const std::vector<AddressRecord>& records) {
  dial.dialing = true;
  const AddressRecord& record = records[static_cast<size_t>(peer)];
  for (int lane = 0; lane < options_.lanes; ++lane) {
    ucp_ep_h ep = nullptr;
    if (dial.reversed) {
      // UCX joins an endpoint to a connection the peer opened only when both ends created the
      // same number of endpoints towards each other on that worker (its connection sequence
      // number). The peer's failed dial created one per lane, so this side creates and drops one
      // first; the peer's answering endpoint then matches the dial below.
      if (create_endpoint(peer, lane, record, ep) == UCS_OK) {
        ucp_request_param_t param{};
        param.op_attr_mask = UCP_OP_ATTR_FIELD_FLAGS;
        param.flags = UCP_EP_CLOSE_FLAG_FORCE;
        ucs_status_ptr_t closing = ucp_ep_close_nbx(ep, &param);
        if (UCS_PTR_IS_PTR(closing)) ucp_request_free(closing);  // UCX finishes it on its own
      }
    }
    const ucs_status_t status = create_endpoint(peer, lane, record, ep);
    if (status != UCS_OK) {
      // Every lane is still tried once, whatever the first met, so that the dial-back knows how
      // many endpoints this side created (see above).
      if (dial.failure.empty()) {
        dial.failure = "lane " + std::to_string(lane) + ": " + ucs_status_string(status);
      }
      continue;
    }
    endpoint(peer, lane).ep = ep;
    send_hello(peer, lane, dial);
  }
  if (dial.failure.empty()) return true;
  close_endpoints(peer, /*force=*/true);
  return false;
}

void Engine::answer(int peer, int lane, PeerDial& dial, const std::vector<AddressRecord>& records) {
  // The peer's hello arrived, so UCX already holds the connection it came on and joins this
  // endpoint to it: no connection is attempted towards the peer.
  ucp_ep_h ep = nullptr;
  check_ucs(
      create_endpoint(peer, lane, records[static_cast<size_t>(peer)], ep),
      "ucp_ep_create answering rank " + std::to_string(peer) + " lane " + std::to_string(lane),
      ErrorKind::kBootstrap);
  endpoint(peer, lane).ep = ep;
  send_hello(peer, lane, dial);
}

std::string Engine::check_arrived_hello(int peer, int lane) const {
  const auto& inbox = hello_in_[static_cast<size_t>(peer * options_.lanes + lane)];
  try {
    const core::ControlMessage message = core::decode_control(inbox);
    const auto* hello = std::get_if<core::Hello>(&message);
    if (hello == nullptr) return "it sent " + core::describe(message) + " instead of its hello";
    std::string why = core::check_hello(*hello, peer, lane, core::expected_hello(options_, size_));
    if (why.empty() && !auth_.verify(peer, lane, hello->proof)) {
      why = "its hello does not prove the job secret for this job and epoch (wrong job secret)";
    }
    return why;
  } catch (const core::WireError& malformed) {
    return malformed.what();
  }
}

bool Engine::absorb_dial_error(int peer, int lane, ucs_status_t status) {
  if (connected_ || dials_.empty()) return false;
  PeerDial& dial = dials_[static_cast<size_t>(peer)];
  if (!dial.dialing || dial.done) return false;
  if (dial.failure.empty()) {
    dial.failure = "lane " + std::to_string(lane) + ": " + ucs_status_string(status);
  }
  close_endpoint(peer, lane, /*force=*/true);
  return true;
}

std::vector<LinkRung> Engine::establish(Store& store, const std::vector<AddressRecord>& records,
                                        Clock::time_point deadline) {
  const int lanes = options_.lanes;
  const auto lane_count = static_cast<size_t>(lanes);
  hello_in_.assign(static_cast<size_t>(size_) * lane_count, {});
  hello_out_.assign(static_cast<size_t>(size_) * lane_count, {});
  dials_.assign(static_cast<size_t>(size_), PeerDial{});
  std::vector<LinkRung> rungs(static_cast<size_t>(size_), LinkRung::kDirect);

  // Every hello receive is posted before anyone is told this rank is ready, so a dial that then
  // stays unanswered for dial_timeout means the connection never came.
  for (int peer = 0; peer < size_; ++peer) {
    if (peer == rank_) continue;
    PeerDial& dial = dials_[static_cast<size_t>(peer)];
    dial.sent.resize(lane_count);
    dial.received.resize(lane_count);
    dial.verified.assign(lane_count, false);
    for (int lane = 0; lane < lanes; ++lane) {
      const auto slot = static_cast<size_t>(peer * lanes + lane);
      core::Hello hello = core::expected_hello(options_, size_);
      hello.rank = static_cast<uint32_t>(rank_);
      hello.lane = static_cast<uint32_t>(lane);
      hello.proof = auth_.prove(peer, lane);
      hello_out_[slot] = core::encode_control(hello);
      hello_in_[slot].assign(core::kControlBytes, 0);
      auto& received = dial.received[static_cast<size_t>(lane)];
      received = std::make_shared<Request>(peer, 0, core::kControlBytes);
      launch_internal(received, false, peer, lane, hello_in_[slot], hello_wire_tag(peer, lane));
    }
  }
  store.set(ready_key(rank_), {1});

  std::map<int, std::string> fatal;  // peer -> why no rung reaches it
  auto give_up_dial = [&](int peer, PeerDial& dial) {
    close_endpoints(peer, /*force=*/true);
    dial.dialing = false;
    if (dial.reversed) {
      // This rank was already the second try: nobody can reach the other.
      store.set(no_route_key(peer, rank_), bytes_of(dial.failure));
      fatal[peer] = "this rank could not dial it back either (" + dial.failure + ")";
      return;
    }
    dial.reversed = true;
    logger_->info("ucx rank {}: rank {} did not answer at {} ({}); asking it to dial back", rank_,
                  peer, describe_addresses(records[static_cast<size_t>(peer)].interface_addresses),
                  dial.failure);
    store.set(dial_back_key(peer, rank_), bytes_of(dial.failure));
  };

  for (int peer = rank_ + 1; peer < size_; ++peer) {
    PeerDial& dial = dials_[static_cast<size_t>(peer)];
    if (!this->dial(peer, dial, records)) give_up_dial(peer, dial);
  }

  Clock::time_point next_store_poll = Clock::now();
  WaitProgress waiting;
  auto pending = [&] {
    std::set<int> peers;
    for (int peer = 0; peer < size_; ++peer) {
      if (peer != rank_ && !dials_[static_cast<size_t>(peer)].done && fatal.count(peer) == 0) {
        peers.insert(peer);
      }
    }
    return peers;
  };
  for (std::set<int> waiting_for = pending(); !waiting_for.empty(); waiting_for = pending()) {
    if (Clock::now() >= deadline) break;
    waiting.maybe_log([&] {
      return "ucx rank " + std::to_string(rank_) +
             ": connecting: " + std::to_string(size_ - 1 - static_cast<int>(waiting_for.size())) +
             "/" + std::to_string(size_ - 1) + " peers answered the hello, waiting for rank(s) " +
             rank_list(waiting_for);
    });
    const bool poll_store = Clock::now() >= next_store_poll;
    if (poll_store) next_store_poll = Clock::now() + kStorePollInterval;

    for (const int peer : waiting_for) {
      PeerDial& dial = dials_[static_cast<size_t>(peer)];
      if (lost_[static_cast<size_t>(peer)]) {
        fatal[peer] = "the connection failed while it was being set up";
        continue;
      }
      for (int lane = 0; lane < lanes; ++lane) {
        const auto& received = dial.received[static_cast<size_t>(lane)];
        if (request_failed(received)) {
          fatal[peer] =
              "its hello on lane " + std::to_string(lane) + " failed: " + error_text(received);
          break;
        }
        if (request_ok(received) && !dial.verified[static_cast<size_t>(lane)]) {
          const std::string why = check_arrived_hello(peer, lane);
          if (!why.empty()) {
            fatal[peer] = "rejected: " + why;
            break;
          }
          dial.verified[static_cast<size_t>(lane)] = true;
          if (!dial.dialing) answer(peer, lane, dial, records);
        }
      }
      if (fatal.count(peer) != 0) continue;

      if (dial.dialing) {
        if (dial.failure.empty()) {
          const auto failed = std::find_if(dial.sent.begin(), dial.sent.end(), request_failed);
          if (failed != dial.sent.end()) dial.failure = error_text(*failed);
        }
        const bool answered = std::any_of(dial.verified.begin(), dial.verified.end(),
                                          [](bool verified) { return verified; });
        if (!dial.failure.empty() || Clock::now() >= dial.dial_deadline) {
          if (dial.failure.empty()) {
            dial.failure =
                "no answer within dial_timeout_ms=" + std::to_string(options_.dial_timeout.count());
          }
          if (answered) {
            // Some lanes connected and some did not: turning the pair around would break the
            // lanes the peer already answered on.
            fatal[peer] = "only some lanes connected (" + dial.failure + ")";
          } else {
            give_up_dial(peer, dial);
          }
          continue;
        }
        if (!dial.peer_ready && poll_store && store.contains(ready_key(peer))) {
          dial.peer_ready = true;
          dial.dial_deadline = Clock::now() + options_.dial_timeout;
        }
      } else if (poll_store) {
        if (!dial.reversed && peer < rank_ && store.contains(dial_back_key(rank_, peer))) {
          // The lower rank could not reach this one: this rank dials it instead.
          dial.reversed = true;
          dial.peer_ready = true;  // it asked, so it progresses
          dial.dial_deadline = Clock::now() + options_.dial_timeout;
          if (!this->dial(peer, dial, records)) give_up_dial(peer, dial);
        } else if (dial.reversed && store.contains(no_route_key(rank_, peer))) {
          fatal[peer] = "it could not dial this rank back (" +
                        text_of(store.get(no_route_key(rank_, peer), options_.dial_timeout)) + ")";
        }
      }

      const bool all_lanes = std::all_of(dial.verified.begin(), dial.verified.end(),
                                         [](bool verified) { return verified; }) &&
                             std::all_of(dial.sent.begin(), dial.sent.end(), request_ok);
      if (all_lanes) {
        dial.done = true;
        rungs[static_cast<size_t>(peer)] = dial.reversed ? LinkRung::kReverse : LinkRung::kDirect;
      }
    }
    if (!progress()) {
      wait_for_event(std::min(base::time_left(deadline), std::chrono::milliseconds(50)));
    }
  }

  const std::set<int> silent = pending();
  std::vector<int> reversed;
  for (int peer = 0; peer < size_; ++peer) {
    if (peer != rank_ && rungs[static_cast<size_t>(peer)] == LinkRung::kReverse) {
      reversed.push_back(peer);
    }
  }
  dials_.clear();
  if (silent.empty() && fatal.empty()) {
    logger_->info("ucx rank {}: connected to {} peers on {} lanes each: {}", rank_, size_ - 1,
                  lanes,
                  reversed.empty() ? std::string("all direct")
                                   : "rank(s) " + rank_list(reversed) +
                                         " by reverse (they dialed this rank), the rest direct");
    return rungs;
  }

  std::string message = "ucx rank " + std::to_string(rank_) + ": connection setup failed:";
  if (!silent.empty()) {
    message += " rank(s) " + rank_list(silent) + " did not answer the hello within " +
               std::to_string(options_.connect_timeout.count()) +
               " ms (address unreachable from here? firewall?);";
  }
  for (const auto& [peer, why] : fatal) {
    message += " no connection between rank " + std::to_string(rank_) + " (" +
               describe_addresses(interface_addresses()) + ") and rank " + std::to_string(peer) +
               " (" + describe_addresses(records[static_cast<size_t>(peer)].interface_addresses) +
               "): " + why + ";";
  }
  message.pop_back();
  if (!fatal.empty()) {
    message +=
        ". Hosts that cannot reach each other need a relay: TORCHWAN_TRANSPORT=zmq with "
        "TORCHWAN_RELAY (docs/reachability.md)";
  }
  const int first = !silent.empty() ? *silent.begin() : fatal.begin()->first;
  throw TransportError(ErrorKind::kBootstrap, message, first);
}

}  // namespace torchwan::transport::ucx
