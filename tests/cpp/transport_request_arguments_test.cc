// The argument checks every transport makes before posting a request (transport/
// request_arguments.h): the problems named, and that UCX, ZeroMQ and the encrypting decorator over
// each refuse exactly the same calls, with the same words and the same blamed peer.
#include <gtest/gtest.h>

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "test_support.h"
#include "transport/errors.h"
#include "transport/request_arguments.h"
#include "transport/transport.h"

namespace torchwan::transport {
namespace {

using testing::connect_ranks;
using testing::loopback_options;

TEST(RequestArguments, NamesEachProblem) {
  const uint8_t byte = 0;
  EXPECT_EQ(request_argument_problem(0, 3, 1, 7, &byte, 1), "");
  EXPECT_EQ(request_argument_problem(0, 3, std::nullopt, 7, &byte, 1), "");
  EXPECT_EQ(request_argument_problem(0, 3, 1, 7, nullptr, 0), "") << "an empty message needs no";
  EXPECT_EQ(request_argument_problem(0, 3, 3, 7, &byte, 1),
            "peer 3 is not a rank of this 3-rank group");
  EXPECT_EQ(request_argument_problem(0, 3, kAnySource, 7, &byte, 1),
            "peer -1 is not a rank of this 3-rank group")
      << "only irecv_any may receive from any rank";
  EXPECT_EQ(request_argument_problem(2, 3, 2, 7, &byte, 1),
            "peer 2 is this rank (self-sends are not supported)");
  EXPECT_EQ(request_argument_problem(0, 3, 1, kMaxTag, &byte, 1),
            "tag 281474976710656 is not below 2^48");
  EXPECT_EQ(request_argument_problem(0, 3, 1, 7, nullptr, 5), "null buffer for 5 bytes");
  EXPECT_EQ(request_argument_problem(0, 1, std::nullopt, 7, &byte, 1),
            "a 1-rank group has no peer to receive from");
}

TEST(RequestArguments, ErrorNamesTheCallerAndOnlyARealPeer) {
  const uint8_t byte = 0;
  try {
    check_request_arguments("zmq rank 0", "isend", 0, 3, 1, kMaxTag, &byte, 1);
    FAIL() << "a tag of 2^48 was accepted";
  } catch (const TransportError& error) {
    EXPECT_EQ(error.kind(), ErrorKind::kInvalidArgument);
    EXPECT_STREQ(error.what(), "zmq rank 0: isend: tag 281474976710656 is not below 2^48");
    EXPECT_EQ(error.peer(), 1);
  }
  try {
    check_request_arguments("zmq rank 0", "irecv", 0, 3, 9, 1, &byte, 1);
    FAIL() << "peer 9 of a 3-rank group was accepted";
  } catch (const TransportError& error) {
    EXPECT_EQ(error.peer(), -1) << "rank 9 does not exist, so no rank is blamed";
  }
  EXPECT_NO_THROW(check_request_arguments("zmq rank 0", "irecv", 0, 3, 2, 1, &byte, 1));
}

// (transport, encrypted)
class TransportArguments : public ::testing::TestWithParam<std::tuple<std::string, bool>> {
 protected:
  TransportOptions options() const {
    TransportOptions result = loopback_options(std::get<0>(GetParam()), 1);
    if (std::get<1>(GetParam())) {
      result.job_id = "arguments-test";
      result.secret_file = secret_;
      result.encryption = "chacha20-poly1305";
    }
    return result;
  }

  testing::SecretDir dir_;
  const std::string secret_ = dir_.create("job.secret");
};

// Runs `call`; returns the problem its TransportError names (the text after "<who>: <call>: "),
// and its kind and peer; fails the test when the call is accepted.
struct Refusal {
  ErrorKind kind = ErrorKind::kInternal;
  std::string problem;
  int peer = -2;
};
Refusal refusal_of(const std::function<void()>& call) {
  try {
    call();
  } catch (const TransportError& error) {
    const std::string what = error.what();
    const size_t second_colon = what.find(": ", what.find(": ") + 2);
    return {error.kind(), second_colon == std::string::npos ? what : what.substr(second_colon + 2),
            error.peer()};
  }
  ADD_FAILURE() << "the call was accepted";
  return {};
}

TEST_P(TransportArguments, RefuseBadCallsInTheSharedWords) {
  auto ranks = connect_ranks(options(), 2);
  Transport& rank0 = *ranks[0];
  std::vector<uint8_t> buffer(8);
  struct Case {
    const char* name;
    std::function<void()> call;
    std::optional<int> peer;
    Tag tag;
    const void* data;
  };
  const std::vector<Case> cases = {
      {"send to self", [&] { rank0.isend(0, 1, buffer.data(), 8); }, 0, 1, buffer.data()},
      {"send past the group", [&] { rank0.isend(2, 1, buffer.data(), 8); }, 2, 1, buffer.data()},
      {"irecv from kAnySource", [&] { rank0.irecv(kAnySource, 1, buffer.data(), 8); }, kAnySource,
       1, buffer.data()},
      {"tag too large", [&] { rank0.irecv(1, kMaxTag, buffer.data(), 8); }, 1, kMaxTag,
       buffer.data()},
      {"null buffer", [&] { rank0.irecv(1, 1, nullptr, 8); }, 1, 1, nullptr},
      {"irecv_any with a null buffer", [&] { rank0.irecv_any(1, nullptr, 8); }, std::nullopt, 1,
       nullptr},
  };
  for (const Case& c : cases) {
    const Refusal refusal = refusal_of(c.call);
    EXPECT_EQ(refusal.kind, ErrorKind::kInvalidArgument) << c.name;
    EXPECT_EQ(refusal.problem, request_argument_problem(0, 2, c.peer, c.tag, c.data, 8)) << c.name;
    const bool real_peer = c.peer && *c.peer >= 0 && *c.peer < 2;
    EXPECT_EQ(refusal.peer, real_peer ? *c.peer : -1) << c.name;
  }
}

TEST_P(TransportArguments, OneRankGroupHasNoSourceToReceiveFrom) {
  auto ranks = connect_ranks(options(), 1);
  uint8_t byte = 0;
  const Refusal refusal = refusal_of([&] { ranks[0]->irecv_any(1, &byte, 1); });
  EXPECT_EQ(refusal.kind, ErrorKind::kInvalidArgument);
  EXPECT_EQ(refusal.problem, "a 1-rank group has no peer to receive from");
}

INSTANTIATE_TEST_SUITE_P(AllTransports, TransportArguments,
                         ::testing::Combine(::testing::ValuesIn(testing::transport_kinds()),
                                            ::testing::Bool()),
                         [](const auto& info) {
                           return std::get<0>(info.param) +
                                  (std::get<1>(info.param) ? "_encrypted" : "_plain");
                         });

}  // namespace
}  // namespace torchwan::transport
