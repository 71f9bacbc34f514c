// Bootstrap reads: every rank publishes a record under a key of its own (its addresses, its auth
// record), then reads every peer's before a deadline, and an error names every rank that never
// published instead of only the first one found missing.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <type_traits>
#include <vector>

#include "transport/errors.h"
#include "transport/store.h"

namespace torchwan::transport {

// Calls on_record(peer, bytes) for each peer of `rank` in a `size`-rank group, in rank order, as
// soon as key_of(peer) can be read, and returns the peers whose key did not appear by `deadline`.
// Once the deadline passed, each remaining key still gets a brief look, so a rank that is merely
// late is still read. Only the store's timeouts count as missing (TransportError kBootstrap or
// kTimeout); any other failure, and anything on_record throws, propagates.
std::vector<int> read_peer_records(
    Store& store, int rank, int size, const std::function<std::string(int peer)>& key_of,
    std::chrono::steady_clock::time_point deadline,
    const std::function<void(int peer, std::vector<uint8_t> bytes)>& on_record);

// "1, 3, 4" or "a, b": items as error messages list them (numbers or strings).
template <typename Items>
std::string comma_list(const Items& items) {
  std::string text;
  for (const auto& item : items) {
    if (!text.empty()) text += ", ";
    if constexpr (std::is_arithmetic_v<std::decay_t<decltype(item)>>) {
      text += std::to_string(item);
    } else {
      text += item;
    }
  }
  return text;
}

// "[1, 3, 4]": ranks as error messages list them.
template <typename Ranks>
std::string rank_list(const Ranks& ranks) {
  // Appended rather than "[" + list + "]": g++ 12 at -O3 misreads that insertion at the front
  // as an overlapping memcpy (-Wrestrict).
  std::string text = "[";
  text += comma_list(ranks);
  text += "]";
  return text;
}

// Every peer's address record, as read_peer_records finds them: `decode(bytes, why)` gives the
// record or nothing (saying why in `why`), and `disagreement(peer, record)` what in it this rank
// cannot work with ("uses 2 lanes, this rank 4 (TORCHWAN_LANES must match on every rank)"), or
// "". Throws TransportError(kBootstrap), prefixed with `who` and naming the peer, for an invalid
// record or a disagreement, and naming every rank that published nothing by `deadline`
// (`patience` is how long that was). This rank's own entry stays default-constructed.
template <typename Record>
std::vector<Record> read_address_records(
    Store& store, const std::string& who, int rank, int size,
    const std::function<std::string(int peer)>& key_of,
    std::chrono::steady_clock::time_point deadline, std::chrono::milliseconds patience,
    const std::function<std::optional<Record>(const std::vector<uint8_t>& bytes, std::string& why)>&
        decode,
    const std::function<std::string(int peer, const Record& record)>& disagreement) {
  std::vector<Record> records(static_cast<size_t>(size));
  auto on_record = [&](int peer, std::vector<uint8_t> bytes) {
    std::string why;
    std::optional<Record> record = decode(bytes, why);
    if (!record) {
      throw TransportError(ErrorKind::kBootstrap,
                           who + ": the address record of rank " + std::to_string(peer) +
                               " under '" + key_of(peer) + "' is invalid: " + why,
                           peer);
    }
    if (std::string problem = disagreement(peer, *record); !problem.empty()) {
      throw TransportError(ErrorKind::kBootstrap,
                           who + ": rank " + std::to_string(peer) + " " + problem, peer);
    }
    records[static_cast<size_t>(peer)] = std::move(*record);
  };
  const std::vector<int> missing =
      read_peer_records(store, rank, size, key_of, deadline, on_record);
  if (!missing.empty()) {
    throw TransportError(ErrorKind::kBootstrap,
                         who + (missing.size() == 1 ? ": rank " : ": ranks ") + rank_list(missing) +
                             " did not publish their address (store key '" +
                             key_of(missing.front()) + "') within " +
                             std::to_string(patience.count()) +
                             " ms; are they running, with the same world size and store?",
                         missing.front());
  }
  return records;
}

}  // namespace torchwan::transport
