// The backend's operation queue: with several threads, an operation starts before the previous
// one has finished only when that one is asleep past the hand-off time (a callback waiting for a
// later operation), never because it is busy or was preempted, so completions keep their order.
#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <future>
#include <mutex>
#include <thread>
#include <vector>

#include "c10d_backend/op_runner.h"

namespace torchwan::c10d_backend {
namespace {

using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;

// Spins for `duration` without ever sleeping: to the scheduler a running (or, on a loaded
// machine, preempted) thread, never a blocked one.
void spin_for(std::chrono::milliseconds duration) {
  const auto until = Clock::now() + duration;
  while (Clock::now() < until) {
  }
}

TEST(OpRunner, BusyOperationIsWaitedForPastTheHandoff) {
  OpRunner runner(3, 5ms);
  std::atomic<bool> first_done{false};
  std::promise<bool> second_saw_first_done;
  std::promise<void> first_finished;
  ASSERT_TRUE(runner.enqueue([&] {
    spin_for(60ms);  // twelve hand-off periods
    first_done = true;
    first_finished.set_value();
  }));
  ASSERT_TRUE(runner.enqueue([&] { second_saw_first_done.set_value(first_done.load()); }));
  auto saw = second_saw_first_done.get_future();
  ASSERT_EQ(saw.wait_for(10s), std::future_status::ready);
  EXPECT_TRUE(saw.get()) << "the second operation started while the first was still running";
  first_finished.get_future().wait();
}

TEST(OpRunner, AsleepOperationHandsOffToTheOneItWaitsFor) {
  OpRunner runner(2, 5ms);
  std::promise<void> later_ran;
  std::promise<bool> waiter_released;
  // The first operation waits for the second, as a PowerSGD-style callback waits for the
  // collective it issued; without the hand-off neither could ever finish.
  ASSERT_TRUE(runner.enqueue([&, ran = later_ran.get_future().share()] {
    waiter_released.set_value(ran.wait_for(10s) == std::future_status::ready);
  }));
  ASSERT_TRUE(runner.enqueue([&] { later_ran.set_value(); }));
  auto released = waiter_released.get_future();
  ASSERT_EQ(released.wait_for(20s), std::future_status::ready);
  EXPECT_TRUE(released.get());
}

TEST(OpRunner, OneThreadRunsInQueueOrder) {
  std::mutex mutex;
  std::vector<int> order;
  {
    OpRunner runner(1);
    for (int i = 0; i < 20; ++i) {
      ASSERT_TRUE(runner.enqueue([&, i] {
        if (i % 5 == 0) std::this_thread::sleep_for(2ms);
        std::lock_guard<std::mutex> lock(mutex);
        order.push_back(i);
      }));
    }
    runner.stop();
    EXPECT_FALSE(runner.enqueue([] {}));
  }
  std::vector<int> expected(20);
  for (int i = 0; i < 20; ++i) expected[static_cast<size_t>(i)] = i;
  EXPECT_EQ(order, expected);
}

}  // namespace
}  // namespace torchwan::c10d_backend
