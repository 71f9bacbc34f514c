// Bootstrap reads: every rank publishes a record under a key of its own (its addresses, its auth
// record), then reads every peer's before a deadline, and an error names every rank that never
// published instead of only the first one found missing.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <string>
#include <type_traits>
#include <vector>

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

}  // namespace torchwan::transport
