// barrier (a collective like any other, ordered with them) and monitoredBarrier, where rank 0
// names the ranks that did not arrive in time instead of every rank just timing out.
#include <c10/util/Exception.h>

#include <algorithm>
#include <chrono>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "base/deadline.h"
#include "c10d_backend/errors.h"
#include "c10d_backend/process_group_wan.h"
#include "c10d_backend/signature.h"
#include "c10d_backend/staging.h"
#include "csrc/collectives.h"
#include "transport/errors.h"
#include "transport/peer_records.h"
#include "transport/transport.h"

namespace torchwan {

using c10d_backend::Staging;

namespace {

using Clock = std::chrono::steady_clock;

// A failure of monitoredBarrier, worded as Gloo words it (torch's tests and tools match on these
// words), followed by torchwan's own account of the cause.
struct MonitorFailure {
  transport::ErrorKind kind;
  std::string message;
  int peer;
};

// Rank 0's side: hears from every rank, then releases them all. Names the ranks that did not
// check in (only the first unless `wait_all_ranks`).
std::optional<MonitorFailure> monitor_ranks(const engine::CollectiveContext& context,
                                            std::chrono::milliseconds limit, bool wait_all_ranks) {
  transport::Transport& transport = context.transport;
  const int size = transport.size();
  const auto deadline = Clock::now() + limit;
  const std::string limit_text = std::to_string(limit.count()) + " ms";
  uint8_t token = 0;  // zero-length messages still name a buffer
  std::vector<std::shared_ptr<transport::Request>> arrivals;
  for (int peer = 1; peer < size; ++peer) {
    arrivals.push_back(transport.irecv(peer, engine::collective_tag(context.seq, 0), &token, 0));
  }
  auto cancel_all = [&] {
    for (auto& arrival : arrivals) arrival->cancel();
  };
  std::vector<int> missing;
  std::vector<int> arrived;
  std::string cause;
  transport::ErrorKind kind = transport::ErrorKind::kTimeout;
  for (int peer = 1; peer < size; ++peer) {
    if (!wait_all_ranks && Clock::now() >= deadline) {
      cancel_all();
      return MonitorFailure{
          transport::ErrorKind::kTimeout,
          "Rank 0 timed out in monitoredBarrier after " + limit_text + ". " +
              (arrived.empty()
                   ? "No ranks successfully processed in monitoredBarrier."
                   : "Successfully processed ranks: " + transport::comma_list(arrived)) +
              " (rank " + std::to_string(peer) + " had not arrived)",
          peer};
    }
    auto& arrival = arrivals[static_cast<size_t>(peer - 1)];
    try {
      arrival->wait(base::time_left(deadline));
      arrived.push_back(peer);
    } catch (const transport::TransportError& error) {
      arrival->cancel();
      if (missing.empty()) {
        kind = error.kind();
        cause = error.what();
      }
      missing.push_back(peer);
      if (!wait_all_ranks) break;
    }
  }
  if (!missing.empty()) {
    cancel_all();
    const bool one = missing.size() == 1;
    return MonitorFailure{kind,
                          std::string(one ? "Rank " : "Ranks ") + transport::comma_list(missing) +
                              " failed to pass monitoredBarrier in " + limit_text + ": " +
                              (one ? "rank " : "ranks ") + transport::comma_list(missing) +
                              " did not arrive (" + cause + ")",
                          missing.front()};
  }
  std::vector<std::shared_ptr<transport::Request>> releases;
  for (int peer = 1; peer < size; ++peer) {
    releases.push_back(transport.isend(peer, engine::collective_tag(context.seq, 1), &token, 0));
  }
  for (auto& release : releases) release->wait(base::time_left(context.deadline));
  return std::nullopt;
}

// Every other rank's side: checks in with rank 0 and waits for its release. Like Gloo's, it
// waits as long as the group's timeout allows (at least the barrier's), since rank 0 itself may
// arrive late; when rank 0 fails the barrier, the cause is in rank 0's error.
std::optional<MonitorFailure> check_in(const engine::CollectiveContext& context, int rank) {
  transport::Transport& transport = context.transport;
  uint8_t token = 0;
  auto arrive = transport.isend(0, engine::collective_tag(context.seq, 0), &token, 0);
  auto release = transport.irecv(0, engine::collective_tag(context.seq, 1), &token, 0);
  try {
    arrive->wait(base::time_left(context.deadline));
    release->wait(base::time_left(context.deadline));
  } catch (const transport::TransportError& error) {
    arrive->cancel();
    release->cancel();
    return MonitorFailure{error.kind(),
                          "Rank " + std::to_string(rank) +
                              " successfully reached monitoredBarrier, but received errors while "
                              "waiting for send/recv from rank 0. Please check rank 0 logs for "
                              "faulty rank. (" +
                              error.what() + ")",
                          0};
  }
  return std::nullopt;
}

}  // namespace

c10::intrusive_ptr<c10d::Work> ProcessGroupWan::barrier(const c10d::BarrierOptions& opts) {
  c10d_backend::SignatureFields fields{c10d::OpType::BARRIER, "barrier"};
  fields.carries_data = false;
  return submit(
      fields, opts.timeout, {}, std::make_shared<Staging>("barrier"),
      [](const engine::CollectiveContext& context, const Staging&) { engine::barrier(context); });
}

void ProcessGroupWan::monitoredBarrier(const c10d::BarrierOptions& opts, bool wait_all_ranks) {
  c10d_backend::SignatureFields fields{c10d::OpType::BARRIER, "monitored_barrier"};
  fields.carries_data = false;
  // Rank 0's limit: the barrier's timeout as given (0 included); unset means the group's.
  const auto limit =
      opts.timeout >= std::chrono::milliseconds::zero() ? opts.timeout : timeout_.load();
  const int rank = rank_;
  auto failure = std::make_shared<std::optional<MonitorFailure>>();
  auto work = submit(fields, std::max(limit, timeout_.load()), {},
                     std::make_shared<Staging>("monitored_barrier"),
                     [rank, limit, wait_all_ranks, failure](
                         const engine::CollectiveContext& context, const Staging&) {
                       if (context.transport.size() == 1) return;
                       *failure = rank == 0 ? monitor_ranks(context, limit, wait_all_ranks)
                                            : check_in(context, rank);
                     });
  work->wait();
  if (*failure) {
    const std::string context = error_context("monitored_barrier", work->getSequencenumber());
    std::rethrow_exception(c10d_backend::error_of_kind(
        (*failure)->kind, context + ": " + (*failure)->message, (*failure)->peer));
  }
}

}  // namespace torchwan
