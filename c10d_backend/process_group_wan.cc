// Construction, the issue path shared by every collective, and the group's lifecycle.
#include "c10d_backend/process_group_wan.h"

#include <ATen/Context.h>
#include <c10/core/ScalarType.h>
#include <c10/util/Exception.h>

#include <numeric>

#include "c10d_backend/debug_log.h"
#include "c10d_backend/device_resources.h"
#include "c10d_backend/errors.h"
#include "c10d_backend/op_runner.h"
#include "c10d_backend/shared_device.h"
#include "c10d_backend/signature.h"
#include "c10d_backend/staging.h"
#include "c10d_backend/store_adapter.h"
#include "c10d_backend/wan_work.h"
#include "csrc/collectives.h"
#include "transport/counting_transport.h"
#include "transport/device.h"
#include "transport/transport.h"

namespace torchwan {

using c10d_backend::WanWork;

namespace {

// How long shutdown() waits for canceled point-to-point requests to report back.
constexpr auto kCancelWait = std::chrono::seconds(10);

[[noreturn]] void throw_connect_error(const WanOptions& options, int rank, int size,
                                      const std::exception& error) {
  C10_THROW_ERROR(DistBackendError, std::string("torchwan: group '") + options.group_name +
                                        "' rank " + std::to_string(rank) + "/" +
                                        std::to_string(size) +
                                        " could not connect: " + error.what());
}

// Connects this process to every rank of `store`'s group: a new transport device.
std::shared_ptr<transport::Device> connect_device(const c10::intrusive_ptr<c10d::Store>& store,
                                                  int rank, int size, const WanOptions& options) {
  c10d_backend::C10dStoreAdapter adapter(store);
  try {
    return transport::Device::create(
        transport::Transport::create(options.transport, adapter, rank, size));
  } catch (const std::exception& error) {
    throw_connect_error(options, rank, size, error);
  }
}

std::vector<int> every_rank(int size) {
  std::vector<int> ranks(static_cast<size_t>(size));
  std::iota(ranks.begin(), ranks.end(), 0);
  return ranks;
}

engine::GroupTopology discover_topology(const c10::intrusive_ptr<c10d::Store>& store,
                                        transport::Transport& transport,
                                        const WanOptions& options) {
  c10d_backend::C10dStoreAdapter adapter(store);
  try {
    return engine::discover_group_topology(adapter, transport, options.topology,
                                           options.transport.connect_timeout);
  } catch (const std::exception& error) {
    C10_THROW_ERROR(DistBackendError, std::string("torchwan: group '") + options.group_name +
                                          "' rank " + std::to_string(transport.rank()) + "/" +
                                          std::to_string(transport.size()) +
                                          " could not decide its regions: " + error.what());
  }
}

}  // namespace

ProcessGroupWan::ProcessGroupWan(const c10::intrusive_ptr<c10d::Store>& store, int rank, int size,
                                 WanOptions options)
    : ProcessGroupWan(nullptr, store, rank, size, every_rank(size), std::move(options)) {}

ProcessGroupWan::ProcessGroupWan(const ProcessGroupWan* parent,
                                 const c10::intrusive_ptr<c10d::Store>& store, int rank, int size,
                                 const std::vector<int>& device_ranks, WanOptions options)
    : c10d::Backend(rank, size),
      options_(std::move(options)),
      timeout_(options_.timeout),
      scratch_(std::make_unique<engine::ScratchPool>(options_.scratch_cache_bytes)),
      streams_(std::make_unique<c10d_backend::DeviceStreams>()),
      pinned_(std::make_unique<c10d_backend::PinnedSlots>()),
      collectives_(std::make_unique<c10d_backend::OpRunner>()),
      peer_ops_(std::make_unique<c10d_backend::OpRunner>()),
      completions_pending_(std::make_shared<c10d_backend::PendingCounter>()),
      nccl_tier_(std::make_unique<c10d_backend::NcclTier>(options_.group_name)) {
  std::shared_ptr<transport::Device> device;
  if (parent && !parent->closed_ && parent->options_.transport == options_.transport) {
    device = parent->shared_->device();
  }
  try {
    if (device) {
      TORCH_CHECK_VALUE(static_cast<int>(device_ranks.size()) == size && rank >= 0 && rank < size,
                        "torchwan: group '", options_.group_name, "' of size ", size, " got ",
                        device_ranks.size(), " device ranks and rank ", rank);
      shared_ = parent->shared_;
      shares_device_ = true;
      device_ranks_ = device_ranks;
      const uint32_t channel =
          shared_->channel_for_group(store, rank, options_.transport.connect_timeout);
      // Counted on its own: the device's counts are every group's together.
      transport_ =
          std::make_unique<transport::CountingTransport>(device->open_view(device_ranks, channel));
    } else {
      device = connect_device(store, rank, size, options_);
      shared_ = std::make_shared<c10d_backend::SharedDevice>(device, store);
      device_ranks_ = every_rank(size);
      transport_ = device->open_view(device_ranks_, 0);
    }
  } catch (const c10::Error&) {
    throw;
  } catch (const std::exception& error) {
    throw_connect_error(options_, rank, size, error);
  }
  if (transport_->rank() != rank) {
    C10_THROW_ERROR(DistBackendError, "torchwan: group '" + options_.group_name + "' rank " +
                                          std::to_string(rank) + " is process " +
                                          std::to_string(device_ranks[static_cast<size_t>(rank)]) +
                                          " of the transport device, but this process is " +
                                          std::to_string(device->rank()));
  }
  topology_ = discover_topology(store, *transport_, options_);
  if (topology_.topology.shares_hosts()) {
    host_memory_ = std::make_unique<engine::HostSharedMemory>();
  }
  init();
}

ProcessGroupWan::~ProcessGroupWan() { shutdown(); }

uint64_t ProcessGroupWan::getSequenceNumberForGroup() {
  std::lock_guard<std::mutex> lock(issue_mutex_);
  return collective_seq_;
}

void ProcessGroupWan::abort() {
  if (closed_.exchange(true)) return;
  transport_->abort("process group aborted");
  // Queued operations still run, and fail at once on the aborted transport.
  collectives_->stop();
  peer_ops_->stop();
}

void ProcessGroupWan::shutdown() {
  if (closed_.exchange(true)) return;
  // Collectives already issued finish normally (or fail by their deadline or a lost peer): every
  // rank issued them, so the peers are there to complete them.
  collectives_->stop();
  peer_ops_->stop();
  {
    std::unique_lock<std::mutex> lock(requests_mutex_);
    if (!requests_.empty()) {
      c10d_backend::log_debug("rank " + std::to_string(rank_) + ": shutdown cancels " +
                              std::to_string(requests_.size()) +
                              " pending point-to-point operation(s)");
    }
    for (auto& [id, request] : requests_) request->cancel();
    if (!requests_done_.wait_for(lock, kCancelWait, [&] { return requests_unfinished_ == 0; })) {
      c10d_backend::log_debug("rank " + std::to_string(rank_) + ": " +
                              std::to_string(requests_unfinished_) +
                              " point-to-point operation(s) did not report back after cancel");
    }
  }
  drain_completions();
  nccl_tier_->shutdown();
  // Closes the connections now, unless other groups still run over them, rather than whenever
  // Python drops its last reference.
  transport_.reset();
  c10d_backend::log_debug("rank " + std::to_string(rank_) + ": process group '" +
                          options_.group_name + "' shut down");
}

void ProcessGroupWan::check_usable(const char* name) const {
  if (closed_) {
    C10_THROW_ERROR(DistBackendError, std::string("torchwan ") + name +
                                          ": the process group was shut down or aborted");
  }
}

void ProcessGroupWan::check_root(int root, const char* name) const {
  TORCH_CHECK_VALUE(root >= 0 && root < size_, "torchwan ", name, ": root rank ", root,
                    " is not a rank of this group of size ", size_);
}

std::chrono::milliseconds ProcessGroupWan::effective_timeout(
    std::chrono::milliseconds op_timeout) const {
  // kUnsetTimeout (-1) and kNoTimeout (0) both mean "the group's default".
  return op_timeout > std::chrono::milliseconds::zero() ? op_timeout : timeout_.load();
}

std::string ProcessGroupWan::error_context(const char* name, uint64_t seq) const {
  std::string where = std::string("torchwan ") + name;
  if (seq != 0) where += " #" + std::to_string(seq);
  return where + " on rank " + std::to_string(rank_) + "/" + std::to_string(size_) + " (group '" +
         options_.group_name + "') failed";
}

void ProcessGroupWan::deliver(std::function<void()> completion) {
  if (!enqueue_completion(completion)) completion();  // shutting down: complete right here
}

bool ProcessGroupWan::enqueue_completion(std::function<void()> completion) {
  completions_pending_->add();
  auto counted = [pending = completions_pending_, completion = std::move(completion)] {
    completion();
    pending->finish();
  };
  if (shared_->completions().enqueue(std::move(counted))) return true;
  completions_pending_->finish();
  return false;
}

void ProcessGroupWan::drain_completions() {
  // A Future callback that shuts its own group down runs on a completion thread: it cannot wait
  // for itself, so the wait is bounded.
  if (!completions_pending_->wait_idle(kCancelWait)) {
    c10d_backend::log_debug("rank " + std::to_string(rank_) + ": " +
                            std::to_string(completions_pending_->pending()) +
                            " completion(s) still running at shutdown");
  }
}

c10::intrusive_ptr<c10d::Work> ProcessGroupWan::submit(
    const c10d_backend::SignatureFields& fields, std::chrono::milliseconds op_timeout,
    std::vector<at::Tensor> outputs, std::shared_ptr<c10d_backend::Staging> staging, Body body,
    uint32_t sequence_numbers) {
  check_usable(fields.name);
  staging->issue(*streams_);
  const auto timeout = effective_timeout(op_timeout);
  const char* name = fields.name;
  engine::CallSignature signature = c10d_backend::make_signature(fields);
  // Sequence numbers double as wire tags, so assigning one and queueing the op is one step.
  std::lock_guard<std::mutex> lock(issue_mutex_);
  const uint64_t seq = collective_seq_ + 1;
  collective_seq_ += sequence_numbers;
  auto work = c10::make_intrusive<WanWork>(rank_, fields.type, seq, name, std::move(outputs),
                                           staging->devices());
  const uint64_t bytes =
      fields.carries_data ? fields.count * c10::elementSize(fields.dtype) : uint64_t{0};
  const bool queued =
      collectives_->enqueue([this, work, seq, timeout, name, staging, bytes,
                             signature = std::move(signature), body = std::move(body)] {
        const auto started = std::chrono::steady_clock::now();
        try {
          staging->stage_in(pinned_.get());
          const engine::CollectiveContext context{
              .transport = *transport_,
              .seq = static_cast<uint32_t>(seq),
              .deadline = std::chrono::steady_clock::now() + timeout,
              .signature = &signature,
              .topology = &topology_.topology,
              .scratch_pool = scratch_.get(),
              .algorithms = &options_.algorithms,
              .host_memory = host_memory_.get()};
          body(context, *staging);
          staging->stage_out();
          collective_stats_.record(name, bytes, staging->pcie_bytes(),
                                   std::chrono::steady_clock::now() - started, false);
          deliver([work, staging] { work->complete(staging->stream()); });
        } catch (const std::exception& error) {
          collective_stats_.record(name, bytes, staging->pcie_bytes(),
                                   std::chrono::steady_clock::now() - started, true);
          auto failure = c10d_backend::wan_error(error_context(name, seq), error, timeout);
          deliver([work, failure] { work->complete_with_error(failure); });
        }
      });
  if (!queued) {
    collective_seq_ -= sequence_numbers;
    check_usable(name);  // shut down between the first check and now
  }
  return work;
}

std::vector<transport::PeerTraffic> ProcessGroupWan::traffic() const {
  return transport_ ? transport_->traffic() : std::vector<transport::PeerTraffic>{};
}

std::vector<transport::LinkRung> ProcessGroupWan::links() const {
  return transport_ ? transport_->links() : std::vector<transport::LinkRung>{};
}

}  // namespace torchwan
