// The connection ladder: the dial phase, the exchange of whom each rank reached, and the rung of
// every pair (docs/reachability.md).
#include <fmt/format.h>
#include <fmt/ranges.h>

#include <algorithm>
#include <cerrno>
#include <random>

#include "relay/relay_client.h"
#include "transport/peer_records.h"
#include "transport/zmq/zmq_engine.h"
#include "transport/zmq/zmq_sockets.h"

namespace torchwan::transport::zmq_detail {

namespace {

using Clock = std::chrono::steady_clock;

constexpr int kProbeEvents = ZMQ_EVENT_CONNECT_RETRIED | ZMQ_EVENT_HANDSHAKE_SUCCEEDED |
                             ZMQ_EVENT_HANDSHAKE_FAILED_NO_DETAIL |
                             ZMQ_EVENT_HANDSHAKE_FAILED_PROTOCOL | ZMQ_EVENT_HANDSHAKE_FAILED_AUTH;

}  // namespace

std::chrono::milliseconds Engine::dial_phase_limit() const {
  // When some candidate neither answers nor refuses (a firewall dropping the SYN), the phase ends
  // after dial_timeout_ms: a handshake takes a few round trips even across continents. At most a
  // quarter of connect_timeout, the rest being left for the exchange of results and the hellos.
  return std::min<std::chrono::milliseconds>(options_.connect_timeout / 4, options_.dial_timeout);
}

namespace {

// A relay member name nobody else holds: 128 random bits, so that a stale registration (an
// earlier process of this rank) never takes this one's place on a relay without a secret.
std::string fresh_relay_token() {
  std::random_device source;
  return fmt::format("{:08x}{:08x}{:08x}{:08x}", source(), source(), source(), source());
}

}  // namespace

std::vector<std::optional<size_t>> Engine::dial_candidates(
    const std::vector<AddressRecord>& addresses, Clock::time_point deadline) {
  const AddressRecord& mine = addresses[static_cast<size_t>(rank_)];
  const auto budget = dial_phase_limit();
  const auto dial_deadline = std::min(deadline, Clock::now() + budget);
  // A peer's private address may be this host's own (two NATed hosts on the same private
  // subnet): a candidate that is one of this rank's own endpoints would only reach this rank.
  auto is_mine = [&](const std::string& endpoint) {
    for (size_t host = 0; host < mine.hosts.size(); ++host) {
      for (int lane = 0; lane < options_.lanes; ++lane) {
        if (mine.endpoint(host, lane) == endpoint) return true;
      }
    }
    return false;
  };
  for (int peer = 0; peer < size_; ++peer) {
    if (peer == rank_) continue;
    const AddressRecord& record = addresses[static_cast<size_t>(peer)];
    for (size_t host = 0; host < record.hosts.size() && host < kMaxProbedHosts; ++host) {
      Probe probe;
      probe.peer = peer;
      probe.host = host;
      probe.endpoint = record.endpoint(host, 0);
      if (is_mine(probe.endpoint)) continue;
      probe.dealer = MonitoredSocket(context_, ::zmq::socket_type::dealer);
      configure_probe(probe.dealer.socket(), options_, budget);
      probe.dealer.start_monitor(context_, fmt::format("probe-{}-{}", peer, host), kProbeEvents);
      probe.dealer.socket().connect(probe.endpoint);
      probes_.push_back(std::move(probe));
    }
  }

  std::vector<std::optional<size_t>> reached(static_cast<size_t>(size_));
  auto unresolved = [&] {
    std::vector<char> open(static_cast<size_t>(size_), 0);
    for (const Probe& probe : probes_) {
      if (!probe.failed) open[static_cast<size_t>(probe.peer)] = 1;
    }
    for (const Probe& probe : probes_) {
      if (probe.connected) open[static_cast<size_t>(probe.peer)] = 0;
    }
    return std::count(open.begin(), open.end(), 1);
  };
  std::vector<zmq_pollitem_t> items;
  while (unresolved() > 0 && Clock::now() < dial_deadline) {
    items.clear();
    for (Probe& probe : probes_) {
      items.push_back(zmq_pollitem_t{probe.dealer.monitor().handle(), 0, ZMQ_POLLIN, 0});
    }
    // Peers' probes come and go on our ROUTERs; their events must not pile up unread.
    for (ReceiveLane& receive : receive_lanes_) {
      items.push_back(zmq_pollitem_t{receive.router.monitor().handle(), 0, ZMQ_POLLIN, 0});
    }
    const auto left =
        std::chrono::duration_cast<std::chrono::milliseconds>(dial_deadline - Clock::now());
    const int ready = zmq_poll(items.data(), static_cast<int>(items.size()),
                               static_cast<long>(std::clamp<long long>(left.count(), 1, 100)));
    if (ready < 0) {
      if (zmq_errno() == EINTR) continue;
      throw ::zmq::error_t();
    }
    for (Probe& probe : probes_) {
      while (const auto event = probe.dealer.next_event()) {
        if (event->event == ZMQ_EVENT_HANDSHAKE_SUCCEEDED) {
          probe.connected = true;
        } else if (event->event != 0) {
          probe.failed = true;
        }
      }
    }
    for (ReceiveLane& receive : receive_lanes_) {
      while (receive.router.next_event()) {
      }
    }
  }
  // The first candidate in the peer's order that answered.
  for (const Probe& probe : probes_) {
    auto& chosen = reached[static_cast<size_t>(probe.peer)];
    if (probe.connected && (!chosen || probe.host < *chosen)) chosen = probe.host;
  }
  probes_.clear();
  return reached;
}

void Engine::choose_rungs(Store& store, const std::vector<AddressRecord>& addresses,
                          const std::vector<std::optional<size_t>>& reached,
                          Clock::time_point deadline) {
  std::vector<ReachRecord> records(static_cast<size_t>(size_));
  ReachRecord& mine = records[static_cast<size_t>(rank_)];
  mine.rank = rank_;
  mine.reached.assign(static_cast<size_t>(size_), 0);
  for (int peer = 0; peer < size_; ++peer) {
    mine.reached[static_cast<size_t>(peer)] = reached[static_cast<size_t>(peer)] ? 1 : 0;
  }
  store.set(reach_key(rank_), encode_reach_record(mine));

  auto on_record = [&](int peer, std::vector<uint8_t> bytes) {
    auto invalid = [&](const std::string& why) {
      return TransportError(ErrorKind::kBootstrap,
                            who() + ": rank " + std::to_string(peer) +
                                " published an invalid reach record under '" + reach_key(peer) +
                                "': " + why,
                            peer);
    };
    std::string why;
    const auto decoded = decode_reach_record(bytes, why);
    if (!decoded) throw invalid(why);
    if (decoded->rank != peer || decoded->reached.size() != static_cast<size_t>(size_)) {
      throw invalid(fmt::format("it speaks for rank {} of a {}-rank group, expected rank {} of {}",
                                decoded->rank, decoded->reached.size(), peer, size_));
    }
    records[static_cast<size_t>(peer)] = *decoded;
  };
  const std::vector<int> missing =
      read_peer_records(store, rank_, size_, reach_key, deadline, on_record);
  if (!missing.empty()) {
    throw TransportError(ErrorKind::kBootstrap,
                         who() + ": ranks " + rank_list(missing) +
                             " did not report which peers they could connect to (store key " +
                             reach_key(missing.front()) + ") within " +
                             std::to_string(options_.connect_timeout.count()) + " ms",
                         missing.front());
  }

  // Every rank holds every record, so every rank decides every pair alike, and a pair that no
  // rung connects fails group creation everywhere with the same message.
  auto tried_at = [&](int rank) {
    if (rank != rank_) return comma_list(addresses[static_cast<size_t>(rank)].lane0_endpoints());
    // What the peers dialed is what they read in the store: name that.
    std::string why;
    const auto published =
        decode_address_record(store.get(address_key(rank_), std::chrono::milliseconds(100)), why);
    return comma_list(
        (published ? *published : addresses[static_cast<size_t>(rank)]).lane0_endpoints());
  };
  std::vector<std::string> unconnected;
  int first_unconnected_peer = -1;
  rungs_.assign(static_cast<size_t>(size_), LinkRung::kDirect);
  carriers_.assign(static_cast<size_t>(size_), Carrier::kSplit);
  for (int a = 0; a < size_; ++a) {
    for (int b = a + 1; b < size_; ++b) {
      const bool a_reached_b = records[static_cast<size_t>(a)].reached[static_cast<size_t>(b)];
      const bool b_reached_a = records[static_cast<size_t>(b)].reached[static_cast<size_t>(a)];
      auto rung = decide_rung(a_reached_b, b_reached_a);
      if (!rung && !options_.relay.empty()) rung = LinkRung::kRelay;
      if (!rung) {
        unconnected.push_back(fmt::format(
            "rank {} could not connect to rank {} at [{}] and rank {} could not connect to rank "
            "{} at [{}]",
            a, b, tried_at(b), b, a, tried_at(a)));
        if (a == rank_ || b == rank_) first_unconnected_peer = a == rank_ ? b : a;
        continue;
      }
      if (a != rank_ && b != rank_) continue;
      const int peer = a == rank_ ? b : a;
      const bool we_reached = a == rank_ ? a_reached_b : b_reached_a;
      rungs_[static_cast<size_t>(peer)] = *rung;
      if (*rung == LinkRung::kReverse) {
        carriers_[static_cast<size_t>(peer)] =
            we_reached ? Carrier::kOurDealer : Carrier::kTheirDealer;
      } else if (*rung == LinkRung::kRelay) {
        carriers_[static_cast<size_t>(peer)] = Carrier::kRelay;
      }
    }
  }
  if (!unconnected.empty()) {
    const auto dialing = dial_phase_limit();
    throw TransportError(
        ErrorKind::kBootstrap,
        fmt::format("{}: no rung of the connection ladder connects {} pair(s) of ranks after {} "
                    "ms of dialing: {}; no relay is given (docs/reachability.md)",
                    who(), unconnected.size(), dialing.count(), fmt::join(unconnected, "; ")),
        first_unconnected_peer);
  }

  for (int peer = 0; peer < size_; ++peer) {
    if (peer == rank_) continue;
    const auto& record = addresses[static_cast<size_t>(peer)];
    switch (carriers_[static_cast<size_t>(peer)]) {
      case Carrier::kSplit:
        log_->info("{}: rank {}: direct link, connected to {}", who(), peer,
                   record.endpoint(*reached[static_cast<size_t>(peer)], 0));
        break;
      case Carrier::kOurDealer:
        log_->info(
            "{}: rank {}: reverse link: it cannot connect to this rank, so this rank's "
            "connections to {} carry both directions",
            who(), peer, record.endpoint(*reached[static_cast<size_t>(peer)], 0));
        break;
      case Carrier::kTheirDealer:
        log_->info(
            "{}: rank {}: reverse link: this rank cannot connect to it at [{}], so its "
            "connections to this rank carry both directions",
            who(), peer, comma_list(record.lane0_endpoints()));
        break;
      case Carrier::kRelay:
        break;  // open_relay logs it, naming the relay
    }
  }
}

void Engine::open_relay(Store& store, Clock::time_point deadline) {
  std::vector<int> relayed;
  for (int peer = 0; peer < size_; ++peer) {
    if (peer != rank_ && carriers_[static_cast<size_t>(peer)] == Carrier::kRelay) {
      relayed.push_back(peer);
    }
  }
  if (relayed.empty()) return;
  RelayRecord mine;
  mine.token = fresh_relay_token();
  const auto left = [&] {
    return std::max<std::chrono::milliseconds>(
        std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now()),
        std::chrono::milliseconds(1));
  };
  try {
    RelayLink::Settings settings;
    settings.endpoints = relay::parse_relay_endpoints(options_.relay);
    // The relay keys members by job: this group's job and epoch, so no other group's lanes meet
    // these even on a relay without a secret.
    settings.job_id = fmt::format("{:016x}.{}", auth_.job_hash(), auth_.epoch());
    settings.token = mine.token;
    settings.lanes = options_.lanes;
    settings.max_payload_bytes = std::max<size_t>(options_.chunk_bytes, core::kControlBytes);
    settings.secret = auth_.secret();
    settings.timeout = std::min<std::chrono::milliseconds>(left(), std::chrono::seconds(10));
    settings.context = &context_;
    settings.congestion = tuning_.congestion;
    relay_ = std::make_unique<RelayLink>(std::move(settings));
    mine.endpoint = relay_->endpoint();
  } catch (const relay::RelayError& error) {
    mine.failure = error.what();
  }
  store.set(relay_key(rank_), encode_relay_record(mine));
  if (!relay_) {
    throw TransportError(ErrorKind::kBootstrap,
                         fmt::format("{}: ranks {} can reach this rank only through a relay, and "
                                     "none admitted it: {}",
                                     who(), rank_list(relayed), mine.failure),
                         relayed.front());
  }
  for (int peer : relayed) {
    std::vector<uint8_t> bytes;
    try {
      bytes = store.get(relay_key(peer), left());
    } catch (const TransportError&) {
      throw TransportError(
          ErrorKind::kBootstrap,
          fmt::format("{}: rank {} did not say at which relay it registered "
                      "(store key {}) within {} ms",
                      who(), peer, relay_key(peer), options_.connect_timeout.count()),
          peer);
    }
    std::string why;
    const auto record = decode_relay_record(bytes, why);
    std::string problem;
    if (!record) {
      problem = "it published an invalid relay record: " + why;
    } else if (!record->failure.empty()) {
      problem = "it could not register at a relay: " + record->failure;
    } else if (record->endpoint != relay_->endpoint()) {
      problem = fmt::format(
          "it registered at the relay {}, this rank at {} (give every rank the "
          "same TORCHWAN_RELAY, with relays every rank can reach first)",
          record->endpoint, relay_->endpoint());
    }
    if (!problem.empty()) {
      throw TransportError(ErrorKind::kBootstrap,
                           fmt::format("{}: rank {} can be reached only through a relay, but {}",
                                       who(), peer, problem),
                           peer);
    }
    relay_->add_peer(peer, record->token);
    log_->info(
        "{}: rank {}: relay link: neither rank can connect to the other, so their lanes "
        "go through the relay at {}",
        who(), peer, relay_->endpoint());
  }
  relay_liveness_.start(Clock::now());
}

}  // namespace torchwan::transport::zmq_detail
