// The bootstrap read every transport shares (transport/peer_records.h): records are handed over in
// rank order as they are read, every rank that never published is named, a late rank is still
// read after the deadline, and a store failure that is not a timeout is not taken for a missing
// rank, and a long wait says every few seconds which ranks it still waits for.
#include <gtest/gtest.h>
#include <spdlog/sinks/ostream_sink.h>

#include <chrono>
#include <set>
#include <sstream>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include "base/log.h"
#include "transport/errors.h"
#include "transport/peer_records.h"
#include "transport/store.h"
#include "transport/wait_progress.h"

namespace torchwan::transport {
namespace {

using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;

std::string key_of(int rank) { return "record/" + std::to_string(rank); }

TEST(PeerRecords, ReadsEveryPeerInRankOrderAndNamesEveryMissingOne) {
  MemoryStore store;
  store.set(key_of(0), {10});  // this rank's own record is never read back
  store.set(key_of(2), {12});
  store.set(key_of(4), {14});
  std::vector<std::pair<int, std::vector<uint8_t>>> seen;
  const auto start = Clock::now();
  const std::vector<int> missing = read_peer_records(
      store, 0, 5, key_of, start + 200ms,
      [&](int peer, std::vector<uint8_t> bytes) { seen.emplace_back(peer, std::move(bytes)); });
  EXPECT_EQ(missing, (std::vector<int>{1, 3}));
  ASSERT_EQ(seen.size(), 2u);
  EXPECT_EQ(seen[0], (std::pair<int, std::vector<uint8_t>>{2, {12}}));
  EXPECT_EQ(seen[1], (std::pair<int, std::vector<uint8_t>>{4, {14}}));
  // Rank 1 used up the deadline; rank 3 got only a brief look, not a second full wait.
  EXPECT_LT(Clock::now() - start, 2s);
}

TEST(PeerRecords, ARankThatPublishesBeforeTheDeadlineIsRead) {
  MemoryStore store;
  std::thread late([&] {
    std::this_thread::sleep_for(100ms);
    store.set(key_of(1), {1});
  });
  int read = -1;
  const std::vector<int> missing = read_peer_records(
      store, 0, 2, key_of, Clock::now() + 5s, [&](int peer, std::vector<uint8_t>) { read = peer; });
  late.join();
  EXPECT_TRUE(missing.empty());
  EXPECT_EQ(read, 1);
}

TEST(PeerRecords, ALongWaitLogsWhichRanksAreStillMissing) {
  auto logger = layer_logger("transport");
  std::ostringstream captured;
  auto sink = std::make_shared<spdlog::sinks::ostream_sink_mt>(captured);
  logger->sinks().push_back(sink);
  const auto level = logger->level();
  logger->set_level(spdlog::level::info);

  MemoryStore store;
  store.set(key_of(2), {2});  // rank 2 is on time, rank 1 and rank 3 are late
  std::thread late([&] {
    std::this_thread::sleep_for(WaitProgress::kInterval + 500ms);
    store.set(key_of(1), {1});
    store.set(key_of(3), {3});
  });
  std::vector<int> read;
  const std::vector<int> missing =
      read_peer_records(store, 0, 4, key_of, Clock::now() + 30s,
                        [&](int peer, std::vector<uint8_t>) { read.push_back(peer); });
  late.join();
  logger->sinks().pop_back();
  logger->set_level(level);

  EXPECT_TRUE(missing.empty());
  EXPECT_EQ(read, (std::vector<int>{1, 2, 3}));
  const std::string text = captured.str();
  EXPECT_NE(text.find("rank 0: connecting: 1/3 peers published their records, waiting for "
                      "rank(s) [1, 3] (store key 'record/1')"),
            std::string::npos)
      << text;
}

// A store whose backend is broken (not merely missing a key).
class BrokenStore final : public Store {
 public:
  void set(const std::string&, const std::vector<uint8_t>&) override {}
  std::vector<uint8_t> get(const std::string&, std::chrono::milliseconds) override {
    throw TransportError(ErrorKind::kProtocol, "store answered garbage");
  }
};

TEST(PeerRecords, AStoreFailureIsNotAMissingRank) {
  BrokenStore store;
  try {
    read_peer_records(store, 0, 3, key_of, Clock::now() + 100ms, [](int, std::vector<uint8_t>) {});
    FAIL() << "a broken store was taken for missing ranks";
  } catch (const TransportError& error) {
    EXPECT_EQ(error.kind(), ErrorKind::kProtocol);
  }
}

TEST(PeerRecords, WhatTheCallerThrowsForARecordStopsTheRead) {
  MemoryStore store;
  store.set(key_of(1), {1});
  int calls = 0;
  EXPECT_THROW(read_peer_records(store, 0, 3, key_of, Clock::now() + 5s,
                                 [&](int, std::vector<uint8_t>) {
                                   ++calls;
                                   throw std::runtime_error("invalid record");
                                 }),
               std::runtime_error);
  EXPECT_EQ(calls, 1) << "rank 2's key was waited for after rank 1's record was refused";
}

TEST(PeerRecords, RankListIsBracketed) {
  EXPECT_EQ(rank_list(std::vector<int>{}), "[]");
  EXPECT_EQ(rank_list(std::vector<int>{3}), "[3]");
  EXPECT_EQ(rank_list(std::set<int>{4, 1, 2}), "[1, 2, 4]");
}

}  // namespace
}  // namespace torchwan::transport
