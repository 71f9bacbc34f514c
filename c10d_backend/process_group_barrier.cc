// barrier (a collective like any other, ordered with them) and monitoredBarrier, where rank 0
// names the ranks that did not arrive in time instead of every rank just timing out.
#include <c10/util/Exception.h>

#include <string>

#include "c10d_backend/process_group_wan.h"
#include "c10d_backend/signature.h"
#include "c10d_backend/staging.h"
#include "csrc/collectives.h"
#include "transport/deadline.h"
#include "transport/transport.h"

namespace torchwan {

using c10d_backend::Staging;

namespace {

// Rank 0's side: hears from every rank, then releases them all. Throws a timeout naming the
// ranks that did not check in (only the first unless `wait_all_ranks`).
void monitor_ranks(const engine::CollectiveContext& context, bool wait_all_ranks) {
  transport::Transport& transport = context.transport;
  const int size = transport.size();
  uint8_t token = 0;  // zero-length messages still name a buffer
  std::vector<std::shared_ptr<transport::Request>> arrivals;
  for (int peer = 1; peer < size; ++peer) {
    arrivals.push_back(transport.irecv(peer, engine::collective_tag(context.seq, 0), &token, 0));
  }
  std::vector<int> missing;
  for (int peer = 1; peer < size; ++peer) {
    auto& arrival = arrivals[static_cast<size_t>(peer - 1)];
    try {
      arrival->wait(transport::time_left(context.deadline));
    } catch (const transport::TransportError&) {
      arrival->cancel();
      missing.push_back(peer);
      if (!wait_all_ranks) break;
    }
  }
  if (!missing.empty()) {
    for (auto& arrival : arrivals) arrival->cancel();
    std::string ranks;
    for (const int peer : missing) ranks += (ranks.empty() ? "" : ", ") + std::to_string(peer);
    throw transport::TransportError(transport::ErrorKind::kTimeout,
                                    std::string(missing.size() == 1 ? "rank " : "ranks ") + ranks +
                                        " failed to pass monitoredBarrier before the deadline");
  }
  std::vector<std::shared_ptr<transport::Request>> releases;
  for (int peer = 1; peer < size; ++peer) {
    releases.push_back(transport.isend(peer, engine::collective_tag(context.seq, 1), &token, 0));
  }
  for (auto& release : releases) release->wait(transport::time_left(context.deadline));
}

void check_in(const engine::CollectiveContext& context) {
  transport::Transport& transport = context.transport;
  uint8_t token = 0;
  auto arrive = transport.isend(0, engine::collective_tag(context.seq, 0), &token, 0);
  auto release = transport.irecv(0, engine::collective_tag(context.seq, 1), &token, 0);
  try {
    arrive->wait(transport::time_left(context.deadline));
    release->wait(transport::time_left(context.deadline));
  } catch (const transport::TransportError&) {
    arrive->cancel();
    release->cancel();
    throw;
  }
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
  const int rank = rank_;
  auto work =
      submit(fields, opts.timeout, {}, std::make_shared<Staging>("monitored_barrier"),
             [rank, wait_all_ranks](const engine::CollectiveContext& context, const Staging&) {
               if (context.transport.size() == 1) return;
               if (rank == 0) {
                 monitor_ranks(context, wait_all_ranks);
               } else {
                 check_in(context);
               }
             });
  work->wait();
}

}  // namespace torchwan
