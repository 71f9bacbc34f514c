#include "transport/zmq/zmq_relay_link.h"

#include <fmt/format.h>

#include <algorithm>
#include <cstring>

#include "base/byte_io.h"

namespace torchwan::transport::zmq_detail {

namespace {
using Clock = std::chrono::steady_clock;
}  // namespace

RelayedRecord make_relayed_record(const std::array<uint8_t, kHeaderBytes>& header,
                                  ::zmq::message_t payload) {
  RelayedRecord record;
  base::ByteWriter prefix(std::span<uint8_t>(record.prefix).first(8));
  prefix.put(static_cast<uint64_t>(payload.size()));
  std::memcpy(record.prefix.data() + 8, header.data(), header.size());
  record.payload.emplace(std::move(payload));
  return record;
}

std::span<const uint8_t> RelayedRecord::unsent() const {
  if (sent < prefix.size()) return std::span<const uint8_t>(prefix).subspan(sent);
  if (!payload) return {};
  const std::span<const uint8_t> body(static_cast<const uint8_t*>(payload->data()),
                                      payload->size());
  return body.subspan(std::min(sent - prefix.size(), body.size()));
}

std::vector<uint8_t> RelayedRecord::bytes() const {
  std::vector<uint8_t> stream(prefix.begin(), prefix.end());
  if (payload) {
    const auto* data = static_cast<const uint8_t*>(payload->data());
    stream.insert(stream.end(), data, data + payload->size());
  }
  return stream;
}

std::string RelayedStreamReader::feed(
    std::span<const uint8_t> bytes,
    const std::function<void(std::vector<::zmq::message_t>&)>& deliver) {
  while (!bytes.empty()) {
    if (!payload_) {
      const size_t take = std::min(bytes.size(), prefix_.size() - prefix_filled_);
      std::memcpy(prefix_.data() + prefix_filled_, bytes.data(), take);
      prefix_filled_ += take;
      bytes = bytes.subspan(take);
      if (prefix_filled_ < prefix_.size()) return {};
      base::ByteReader reader(prefix_.data(), 8, "relayed record");
      const auto length = reader.get<uint64_t>("payload length");
      if (length > max_payload_) {
        return fmt::format("a relayed record announced a {}-byte payload, more than one piece ({})",
                           length, max_payload_);
      }
      payload_.emplace(static_cast<size_t>(length));
      payload_filled_ = 0;
    }
    const size_t take = std::min(bytes.size(), payload_->size() - payload_filled_);
    if (take > 0) {
      std::memcpy(static_cast<uint8_t*>(payload_->data()) + payload_filled_, bytes.data(), take);
    }
    payload_filled_ += take;
    bytes = bytes.subspan(take);
    if (payload_filled_ < payload_->size()) return {};
    std::vector<::zmq::message_t> parts;
    parts.emplace_back(prefix_.data() + 8, kHeaderBytes);
    parts.push_back(std::move(*payload_));
    payload_.reset();
    prefix_filled_ = 0;
    deliver(parts);
  }
  return {};
}

RelayLink::RelayLink(Settings settings) : settings_(std::move(settings)) {
  for (int lane = 0; lane < settings_.lanes; ++lane) {
    relay::RelayClientOptions options;
    // Every lane joins the relay that admitted lane 0: a peer finds all of them there.
    options.endpoints =
        lane == 0 ? settings_.endpoints : std::vector<std::string>{lanes_.front()->endpoint()};
    options.job_id = settings_.job_id;
    options.member = member_id(settings_.token, lane);
    options.secret = settings_.secret;
    options.timeout = settings_.timeout;
    options.context = settings_.context;
    options.congestion = settings_.congestion;
    lanes_.push_back(std::make_unique<relay::RelayClient>(std::move(options)));
    handles_.push_back(lanes_.back()->handle());
  }
}

const std::string& RelayLink::endpoint() const { return lanes_.front()->endpoint(); }

std::string RelayLink::member_id(const std::string& token, int lane) {
  return fmt::format("{}.{}", token, lane);
}

std::optional<std::pair<int, std::string>> RelayLink::peer_of(const std::string& member) const {
  const auto dot = member.rfind('.');
  if (dot == std::string::npos) return std::nullopt;
  const auto found = rank_by_token_.find(member.substr(0, dot));
  if (found == rank_by_token_.end()) return std::nullopt;
  return std::make_pair(found->second, member.substr(dot + 1));
}

void RelayLink::add_peer(int rank, const std::string& token) {
  rank_by_token_[token] = rank;
  token_by_rank_[rank] = token;
  heard_[rank] = Clock::now();
  for (int lane = 0; lane < settings_.lanes; ++lane) {
    readers_.emplace(std::make_pair(rank, lane), RelayedStreamReader(settings_.max_payload_bytes));
  }
}

bool RelayLink::send(int peer, int lane, RelayedRecord& record) {
  relay::RelayClient& client = *lanes_[static_cast<size_t>(lane)];
  const std::string member = member_id(token_by_rank_.at(peer), lane);
  while (record.sent < record.size()) {
    // The prefix goes as a chunk of its own, so the payload is read where it lies.
    const std::span<const uint8_t> unsent = record.unsent();
    const uint64_t room = client.room(member, static_cast<uint32_t>(lane));
    const size_t chunk =
        static_cast<size_t>(std::min<uint64_t>({room, client.max_chunk_bytes(), unsent.size()}));
    if (chunk == 0) return false;  // the window is full: credit wakes the poll
    client.send_now(member, static_cast<uint32_t>(lane), unsent.first(chunk));
    record.sent += chunk;
  }
  return true;
}

void RelayLink::receive(const Deliver& deliver, std::vector<Problem>& problems) {
  for (size_t lane = 0; lane < lanes_.size(); ++lane) {
    relay::RelayClient& client = *lanes_[lane];
    try {
      client.poll_now();
    } catch (const std::exception& error) {
      problems.push_back({-1, fmt::format("the relay at {} sent lane {} something malformed: {}",
                                          endpoint(), lane, error.what())});
      return;
    }
    if (!client.refusal().empty()) {
      problems.push_back({-1, fmt::format("the relay at {} dropped lane {}: {}", endpoint(), lane,
                                          client.refusal())});
      return;
    }
    for (const auto& [member, reason] : client.take_no_routes()) {
      const auto peer = peer_of(member);
      if (!peer) continue;
      problems.push_back(
          {peer->first, fmt::format("the relay at {} has no route to it: {}", endpoint(), reason)});
    }
    while (auto message = client.take()) {
      // A member that is no peer of this group, or another lane's, gets nothing delivered.
      const auto sender = peer_of(message->peer);
      if (!sender || sender->second != std::to_string(lane)) continue;
      const int peer = sender->first;
      const auto reader = readers_.find({peer, static_cast<int>(lane)});
      if (reader == readers_.end() || forgotten_.count(peer) != 0) continue;  // the peer is lost
      heard_[peer] = Clock::now();
      const std::string why =
          reader->second.feed(message->bytes(), [&](std::vector<::zmq::message_t>& parts) {
            deliver(peer, static_cast<int>(lane), parts);
          });
      if (!why.empty()) {
        problems.push_back({peer, why});
        forget(peer);
      }
    }
  }
}

Clock::time_point RelayLink::last_heard(int peer) const {
  const auto found = heard_.find(peer);
  return found != heard_.end() ? found->second : Clock::now();
}

void RelayLink::forget(int peer) { forgotten_.insert(peer); }

}  // namespace torchwan::transport::zmq_detail
