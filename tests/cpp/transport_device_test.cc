// Group views over one transport device per process, over UCX and ZeroMQ: groups over the same
// processes reuse the device's connections, never see each other's messages even with equal tags,
// number their ranks their own way, and fail or close alone.
#include <gtest/gtest.h>

#include <chrono>
#include <memory>
#include <string>
#include <vector>

#include "test_support.h"
#include "transport/device.h"
#include "transport/errors.h"

namespace torchwan {
namespace {

using namespace std::chrono_literals;
using transport::Device;
using transport::ErrorKind;
using transport::Request;
using transport::Tag;
using transport::Transport;
using transport::TransportError;

constexpr Tag kTag = 12;

class DeviceViews : public ::testing::TestWithParam<std::string> {
 protected:
  // A 3-process device per rank (threads of this test).
  void SetUp() override {
    for (auto& links : testing::connect_ranks(testing::loopback_options(GetParam()), 3)) {
      devices_.push_back(Device::create(std::move(links)));
    }
  }
  Device& device(int rank) { return *devices_[static_cast<size_t>(rank)]; }

  std::vector<std::shared_ptr<Device>> devices_;
};

ErrorKind kind_of(const std::shared_ptr<Request>& request) {
  try {
    request->wait(10s);
  } catch (const TransportError& error) {
    return error.kind();
  }
  ADD_FAILURE() << "the request did not fail";
  return ErrorKind::kInternal;
}

TEST_P(DeviceViews, GroupsWithEqualTagsNeverSeeEachOthersMessages) {
  // Group A: processes 0,1,2 as ranks 0,1,2. Group B: the same processes as ranks 2,0,1.
  std::vector<std::unique_ptr<Transport>> a, b;
  for (int p = 0; p < 3; ++p) a.push_back(device(p).open_view({0, 1, 2}, 1));
  for (int p = 0; p < 3; ++p) b.push_back(device(p).open_view({1, 2, 0}, 2));
  EXPECT_EQ(b[1]->rank(), 0);
  EXPECT_EQ(b[2]->rank(), 1);
  EXPECT_EQ(b[0]->rank(), 2);

  const auto in_a = testing::pattern_bytes(4096, 1);
  const auto in_b = testing::pattern_bytes(4096, 2);
  std::vector<uint8_t> got_a(4096), got_b(4096);
  // Process 0 receives from process 1 in both groups with the same tag; B's message is sent
  // first, so a receive that ignored the channel would take it.
  auto recv_a = a[0]->irecv(1, kTag, got_a.data(), got_a.size());
  auto recv_b = b[0]->irecv(0, kTag, got_b.data(), got_b.size());  // B's rank 0 is process 1
  b[1]->isend(2, kTag, in_b.data(), in_b.size())->wait(10s);       // B's rank 2 is process 0
  a[1]->isend(0, kTag, in_a.data(), in_a.size())->wait(10s);
  recv_a->wait(10s);
  recv_b->wait(10s);
  EXPECT_EQ(got_a, in_a);
  EXPECT_EQ(got_b, in_b);
}

TEST_P(DeviceViews, AnySourceReceiveNamesTheSendersGroupRank) {
  // A two-process group {2, 0}: process 0 is its rank 1, process 2 its rank 0.
  auto on0 = device(0).open_view({2, 0}, 5);
  auto on2 = device(2).open_view({2, 0}, 5);
  ASSERT_EQ(on0->size(), 2);
  const auto sent = testing::pattern_bytes(100, 3);
  std::vector<uint8_t> got(100);
  auto receive = on0->irecv_any(kTag, got.data(), got.size());
  on2->isend(1, kTag, sent.data(), sent.size())->wait(10s);
  receive->wait(10s);
  EXPECT_EQ(receive->source(), 0);
  EXPECT_EQ(got, sent);
}

TEST_P(DeviceViews, AbortingOneGroupLeavesTheOthersWorking) {
  std::vector<std::unique_ptr<Transport>> doomed, other;
  for (int p = 0; p < 3; ++p) doomed.push_back(device(p).open_view({0, 1, 2}, 1));
  for (int p = 0; p < 3; ++p) other.push_back(device(p).open_view({0, 1, 2}, 2));
  std::vector<uint8_t> buffer(64);
  auto pending = doomed[0]->irecv(1, kTag, buffer.data(), buffer.size());
  doomed[0]->abort("test aborts the group");
  EXPECT_EQ(kind_of(pending), ErrorKind::kAborted);
  // Later calls of the aborted group fail at once, naming the reason.
  EXPECT_EQ(kind_of(doomed[0]->isend(1, kTag, buffer.data(), buffer.size())), ErrorKind::kAborted);

  const auto sent = testing::pattern_bytes(64, 9);
  std::vector<uint8_t> got(64);
  auto receive = other[0]->irecv(1, kTag, got.data(), got.size());
  other[1]->isend(0, kTag, sent.data(), sent.size())->wait(10s);
  receive->wait(10s);
  EXPECT_EQ(got, sent);
}

TEST_P(DeviceViews, ClosingAGroupGivesItsReceiveBuffersBack) {
  auto closing = device(0).open_view({0, 1}, 3);
  std::vector<uint8_t> buffer(64, 0);
  auto pending = closing->irecv(1, kTag, buffer.data(), buffer.size());
  closing.reset();
  EXPECT_EQ(kind_of(pending), ErrorKind::kCanceled);
  // A late message in the closed channel lands nowhere; the device serves the next group.
  auto late_sender = device(1).open_view({0, 1}, 3);
  const auto late = testing::pattern_bytes(64, 4);
  late_sender->isend(0, kTag, late.data(), late.size());
  auto next0 = device(0).open_view({0, 1}, 4);
  auto next1 = device(1).open_view({0, 1}, 4);
  const auto sent = testing::pattern_bytes(64, 5);
  std::vector<uint8_t> got(64);
  auto receive = next0->irecv(1, kTag, got.data(), got.size());
  next1->isend(0, kTag, sent.data(), sent.size())->wait(10s);
  receive->wait(10s);
  EXPECT_EQ(got, sent);
  EXPECT_EQ(buffer, std::vector<uint8_t>(64, 0));
}

TEST_P(DeviceViews, TheIdentityViewIsTheDeviceItself) {
  auto world0 = device(0).open_view({0, 1, 2}, 0);
  auto world1 = device(1).open_view({0, 1, 2}, 0);
  // Sent through the view, received on the device's links with the same tag: nothing is added.
  const auto sent = testing::pattern_bytes(32, 6);
  std::vector<uint8_t> got(32);
  auto receive = device(0).links().irecv(1, kTag, got.data(), got.size());
  world1->isend(0, kTag, sent.data(), sent.size())->wait(10s);
  receive->wait(10s);
  EXPECT_EQ(got, sent);
}

TEST_P(DeviceViews, RefusesMembersAndTagsItCannotCarry) {
  auto expect_invalid = [](const auto& call) {
    try {
      call();
      ADD_FAILURE() << "accepted";
    } catch (const TransportError& error) {
      EXPECT_EQ(error.kind(), ErrorKind::kInvalidArgument) << error.what();
    }
  };
  expect_invalid([&] { device(0).open_view({1, 2}, 1); });     // not a member
  expect_invalid([&] { device(0).open_view({0, 0, 1}, 1); });  // twice
  expect_invalid([&] { device(0).open_view({0, 3}, 1); });     // no such process
  expect_invalid([&] { device(0).open_view({0, 1}, transport::kMaxChannel + 1); });
  auto view = device(0).open_view({0, 1}, 1);
  uint8_t byte = 0;
  expect_invalid([&] { view->isend(1, transport::kMaxGroupTag, &byte, 1); });
  expect_invalid([&] { view->isend(2, kTag, &byte, 1); });  // group rank 2 does not exist
}

INSTANTIATE_TEST_SUITE_P(Transports, DeviceViews, ::testing::ValuesIn(testing::transport_kinds()),
                         [](const auto& info) { return info.param; });

}  // namespace
}  // namespace torchwan
