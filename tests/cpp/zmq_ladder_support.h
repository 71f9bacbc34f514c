// What the ZeroMQ ladder's tests share: a store that makes ranks undialable, and an exchange that
// checks every pair byte for byte. A rank that cannot be dialed is made by rewriting the address
// record it publishes so that its candidate host is one where nothing listens (its ROUTERs listen
// on 127.0.0.1 only), as a NATed host's private address is to a peer outside.
#pragma once

#include <gtest/gtest.h>

#include <chrono>
#include <memory>
#include <set>
#include <stdexcept>
#include <string>
#include <vector>

#include "test_support.h"
#include "transport/store.h"
#include "transport/transport.h"
#include "transport/zmq/zmq_records.h"

namespace torchwan::testing {

// Where nothing listens: the ROUTERs of a rank whose host is 127.0.0.1 do not listen here.
inline constexpr char kUnreachableHost[] = "127.0.0.2";

// A real MemoryStore whose only change is to the address records of `hidden` ranks: their
// candidate hosts are replaced by one nobody can connect to, so no peer can dial them while they
// still dial everyone.
class HidingStore : public transport::Store {
 public:
  explicit HidingStore(std::set<int> hidden) : hidden_(std::move(hidden)) {}

  void set(const std::string& key, const std::vector<uint8_t>& value) override {
    for (int rank : hidden_) {
      if (key != transport::zmq_detail::address_key(rank)) continue;
      std::string why;
      auto record = transport::zmq_detail::decode_address_record(value, why);
      if (!record) throw std::runtime_error(why);
      record->hosts = {kUnreachableHost};
      store_.set(key, transport::zmq_detail::encode_address_record(*record));
      return;
    }
    store_.set(key, value);
  }
  std::vector<uint8_t> get(const std::string& key, std::chrono::milliseconds timeout) override {
    return store_.get(key, timeout);
  }

 private:
  std::set<int> hidden_;
  transport::MemoryStore store_;
};

inline double seconds_since(std::chrono::steady_clock::time_point start) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
}

inline bool contains(const std::string& text, const std::string& part) {
  return text.find(part) != std::string::npos;
}

// Every rank sends every other rank a message whose bytes depend on both ranks, in sizes from
// empty to several chunks (striped over every lane), and checks what it received byte for byte.
inline void exchange_everywhere(std::vector<std::unique_ptr<transport::Transport>>& ranks) {
  using namespace std::chrono_literals;
  const int size = static_cast<int>(ranks.size());
  for (const size_t length : {size_t{0}, size_t{1}, size_t{70'000}, size_t{9} << 20}) {
    run_on_threads(size, [&](int rank) {
      std::vector<std::vector<uint8_t>> got(static_cast<size_t>(size));
      std::vector<std::vector<uint8_t>> sent(static_cast<size_t>(size));
      std::vector<std::shared_ptr<transport::Request>> requests;
      for (int peer = 0; peer < size; ++peer) {
        if (peer == rank) continue;
        got[static_cast<size_t>(peer)].resize(length);
        sent[static_cast<size_t>(peer)] =
            pattern_bytes(length, static_cast<uint32_t>(rank * 31 + peer));
        requests.push_back(ranks[static_cast<size_t>(rank)]->irecv(
            peer, 5, got[static_cast<size_t>(peer)].data(), length));
        requests.push_back(ranks[static_cast<size_t>(rank)]->isend(
            peer, 5, sent[static_cast<size_t>(peer)].data(), length));
      }
      for (auto& request : requests) request->wait(20s);
      for (int peer = 0; peer < size; ++peer) {
        if (peer == rank) continue;
        EXPECT_TRUE(got[static_cast<size_t>(peer)] ==
                    pattern_bytes(length, static_cast<uint32_t>(peer * 31 + rank)))
            << "rank " << rank << " from " << peer << ", " << length << " bytes";
      }
    });
  }
}

// What `request` failed with (waiting at most `timeout`), checked to be of `kind`; fails the test
// when it completed instead.
inline std::string failure_of(transport::Request& request, transport::ErrorKind kind,
                              std::chrono::milliseconds timeout) {
  try {
    request.wait(timeout);
  } catch (const transport::TransportError& error) {
    EXPECT_EQ(error.kind(), kind) << error.what();
    return error.what();
  }
  ADD_FAILURE() << "the request completed instead of failing";
  return "";
}

// Every rank's links() is `expected[rank]` (its own entry, which means nothing, aside).
inline void expect_links(const std::vector<std::unique_ptr<transport::Transport>>& ranks,
                         const std::vector<std::vector<transport::LinkRung>>& expected) {
  for (size_t rank = 0; rank < ranks.size(); ++rank) {
    auto links = ranks[rank]->links();
    links[rank] = expected[rank][rank];
    EXPECT_EQ(links, expected[rank]) << "rank " << rank;
  }
}

}  // namespace torchwan::testing
