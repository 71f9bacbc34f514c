// The peer table both links share (transport/core/peer_table.h): the first failure of a peer or
// of the transport stays, requests are refused by the abort first and then by their peer's loss,
// a departed peer still takes receives, and the failure handler is called once per report, with
// a throwing handler contained.
#include <gtest/gtest.h>

#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

#include "transport/core/peer_table.h"
#include "transport/request.h"

namespace torchwan::transport::core {
namespace {

std::string message_of(const std::exception_ptr& error) {
  try {
    std::rethrow_exception(error);
  } catch (const TransportError& failure) {
    return failure.what();
  }
}

TEST(PeerTable, FirstFailureStaysAndRefusesRequests) {
  PeerTable peers(3);
  EXPECT_FALSE(peers.refusal(1, /*is_send=*/true));
  EXPECT_TRUE(peers.lose(1, {ErrorKind::kPeerLost, "rank 1 stopped answering", 1}));
  EXPECT_FALSE(peers.lose(1, {ErrorKind::kProtocol, "later news", 1}));
  ASSERT_TRUE(peers.is_lost(1));
  EXPECT_FALSE(peers.is_lost(2));
  const auto refusal = peers.refusal(1, /*is_send=*/false);
  ASSERT_TRUE(refusal);
  EXPECT_EQ(refusal->kind, ErrorKind::kPeerLost);
  EXPECT_EQ(refusal->message, "rank 1 stopped answering");
  try {
    std::rethrow_exception(refusal->error());
  } catch (const TransportError& error) {
    EXPECT_EQ(error.kind(), ErrorKind::kPeerLost);
    EXPECT_EQ(error.peer(), 1);
  }
  // No single lost peer refuses an any-source receive.
  EXPECT_FALSE(peers.refusal(kAnySource, /*is_send=*/false));
  EXPECT_FALSE(peers.refusal(2, /*is_send=*/true));
}

TEST(PeerTable, AbortRefusesEverythingAndKeepsItsFirstReason) {
  PeerTable peers(2);
  peers.lose(1, {ErrorKind::kPeerLost, "gone", 1});
  EXPECT_TRUE(peers.abort({ErrorKind::kAborted, "the job is over"}));
  EXPECT_FALSE(peers.abort({ErrorKind::kAborted, "again"}));
  for (int peer : {0, 1, kAnySource}) {
    const auto refusal = peers.refusal(peer, /*is_send=*/false);
    ASSERT_TRUE(refusal) << peer;
    EXPECT_EQ(refusal->kind, ErrorKind::kAborted);
    EXPECT_EQ(message_of(refusal->error()), "the job is over");
  }
}

TEST(PeerTable, ADepartedPeerRefusesSendsButNotReceives) {
  PeerTable peers(2);
  peers.depart(1);
  peers.lose(1, {ErrorKind::kPeerLost, "it left the group", 1});
  EXPECT_TRUE(peers.departed(1));
  EXPECT_TRUE(peers.refusal(1, /*is_send=*/true));
  EXPECT_FALSE(peers.refusal(1, /*is_send=*/false));
}

TEST(PeerTable, ReportsReachTheHandlerAndAThrowingHandlerIsContained) {
  PeerTable peers(4);
  peers.report_lost(2, "nobody listens yet");  // no handler: nothing happens
  std::vector<std::pair<int, std::string>> seen;
  peers.set_failure_handler([&](int peer, const std::string& reason) {
    seen.emplace_back(peer, reason);
    if (peer == 3) throw std::runtime_error("handler failed");
  });
  peers.report_lost(2, "silent for 5000 ms");
  EXPECT_NO_THROW(peers.report_lost(3, "endpoint error"));
  ASSERT_EQ(seen.size(), 2u);
  EXPECT_EQ(seen[0], std::make_pair(2, std::string("silent for 5000 ms")));
  EXPECT_EQ(seen[1].first, 3);
}

TEST(PeerTable, PeersOutsideTheGroupAreRejected) {
  PeerTable peers(2);
  EXPECT_THROW(peers.lose(2, {}), std::out_of_range);
  EXPECT_THROW(peers.refusal(5, /*is_send=*/true), std::out_of_range);
}

}  // namespace
}  // namespace torchwan::transport::core
