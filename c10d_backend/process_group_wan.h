// The "wan" c10d backend: torch's collectives over the torchwan engine and transports.
// Public header: C++ training code builds one from a c10d::Store (see examples/cpp).
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <torch/csrc/distributed/c10d/Backend.hpp>
#include <torch/csrc/distributed/c10d/Store.hpp>
#include <torch/csrc/distributed/c10d/Types.hpp>
#include <torch/csrc/distributed/c10d/Work.hpp>
#include <unordered_map>
#include <vector>

#include "c10d_backend/collective_stats.h"
#include "c10d_backend/local_tier.h"
#include "csrc/algorithm_table.h"
#include "csrc/compressed_allreduce.h"
#include "csrc/group_topology.h"
#include "csrc/host_shared_memory.h"
#include "csrc/scratch_pool.h"
#include "transport/options.h"
#include "transport/traffic.h"

namespace torchwan::transport {
class Transport;
class Request;
}  // namespace torchwan::transport
namespace torchwan::engine {
struct CollectiveContext;
}

namespace torchwan {

namespace c10d_backend {
class OpRunner;
class PendingCounter;
class Staging;
class DeviceStreams;
class PinnedSlots;
class SharedDevice;
struct SignatureFields;
struct Residuals;
}  // namespace c10d_backend

struct WanOptions {
  // Defaults come from the TORCHWAN_* environment, so shell settings apply to unmodified scripts.
  transport::TransportOptions transport = transport::TransportOptions::from_env();
  // Deadline of every operation that does not set its own.
  std::chrono::milliseconds timeout = std::chrono::minutes(30);  // torch's default
  // Shown in error messages so a user can tell groups apart.
  std::string group_name;
  // How the group's regions are found (hierarchical allreduce); TORCHWAN_REGION, TORCHWAN_TOPOLOGY.
  engine::TopologyOptions topology = engine::TopologyOptions::from_env();
  // Codec for large floating-point SUM/AVG allreduces (TORCHWAN_COMPRESSION, default none).
  engine::AllreduceCompression compression = engine::AllreduceCompression::from_env();
  // Bytes of collective temporaries kept between calls (TORCHWAN_SCRATCH_CACHE_BYTES; 0: none).
  size_t scratch_cache_bytes = engine::ScratchPool::max_cached_bytes_from_env();
  engine::AlgorithmOverrides algorithms = engine::AlgorithmOverrides::from_env();
};

class ProcessGroupWan final : public c10d::Backend {
 public:
  // Connects to every other rank through `store`, creating this process's transport device (the
  // connections later groups share); returns when the group is ready.
  ProcessGroupWan(const c10::intrusive_ptr<c10d::Store>& store, int rank, int size,
                  WanOptions options = {});
  // A group over processes `parent` is connected to: its rank r is the process with rank
  // device_ranks[r] on parent's device (for torch's groups, whose parent is WORLD: the global
  // ranks). It shares parent's device, opening no connection and starting no thread until it
  // runs an operation, unless its transport options differ or parent was shut down: then it
  // connects through `store` like a first group.
  ProcessGroupWan(const ProcessGroupWan* parent, const c10::intrusive_ptr<c10d::Store>& store,
                  int rank, int size, const std::vector<int>& device_ranks,
                  WanOptions options = {});
  ~ProcessGroupWan() override;

  const std::string getBackendName() const override { return "wan"; }

  // Reductions (process_group_reduce.cc).
  c10::intrusive_ptr<c10d::Work> allreduce(std::vector<at::Tensor>& tensors,
                                           const c10d::AllreduceOptions& opts) override;
  c10::intrusive_ptr<c10d::Work> allreduce_coalesced(
      std::vector<at::Tensor>& tensors, const c10d::AllreduceCoalescedOptions& opts) override;
  // Sparse COO tensors, reduced as Gloo reduces them (process_group_sparse_allreduce.cc).
  c10::intrusive_ptr<c10d::Work> allreduce_sparse(std::vector<at::Tensor>& tensors,
                                                  const c10d::AllreduceOptions& opts) override;
  c10::intrusive_ptr<c10d::Work> reduce(std::vector<at::Tensor>& tensors,
                                        const c10d::ReduceOptions& opts) override;
  // SUM or AVG of a floating-point tensor through `config`'s codec, with optional error-feedback
  // residuals: what torchwan.hooks runs, its future completed by this Work
  // (c10d_backend/compressed_allreduce.cc).
  c10::intrusive_ptr<c10d::Work> compressed_allreduce(at::Tensor& tensor,
                                                      const compression::CodecConfig& config,
                                                      const c10d::ReduceOp& reduce_op,
                                                      const c10d_backend::Residuals* residuals);
  c10::intrusive_ptr<c10d::Work> reduce_scatter(std::vector<at::Tensor>& outputs,
                                                std::vector<std::vector<at::Tensor>>& inputs,
                                                const c10d::ReduceScatterOptions& opts) override;
  c10::intrusive_ptr<c10d::Work> _reduce_scatter_base(
      at::Tensor& output, at::Tensor& input, const c10d::ReduceScatterOptions& opts) override;
  c10::intrusive_ptr<c10d::Work> reduce_scatter_tensor_coalesced(
      std::vector<at::Tensor>& outputs, std::vector<at::Tensor>& inputs,
      const c10d::ReduceScatterOptions& opts) override;

  // Data movement (process_group_gather.cc).
  c10::intrusive_ptr<c10d::Work> broadcast(std::vector<at::Tensor>& tensors,
                                           const c10d::BroadcastOptions& opts) override;
  c10::intrusive_ptr<c10d::Work> allgather(std::vector<std::vector<at::Tensor>>& outputs,
                                           std::vector<at::Tensor>& inputs,
                                           const c10d::AllgatherOptions& opts) override;
  c10::intrusive_ptr<c10d::Work> _allgather_base(at::Tensor& output, at::Tensor& input,
                                                 const c10d::AllgatherOptions& opts) override;
  // Per-rank lists of several inputs (process_group_allgather_coalesced.cc).
  c10::intrusive_ptr<c10d::Work> allgather_coalesced(
      std::vector<std::vector<at::Tensor>>& output_lists, std::vector<at::Tensor>& inputs,
      const c10d::AllgatherOptions& opts) override;
  c10::intrusive_ptr<c10d::Work> allgather_into_tensor_coalesced(
      std::vector<at::Tensor>& outputs, std::vector<at::Tensor>& inputs,
      const c10d::AllgatherOptions& opts) override;
  c10::intrusive_ptr<c10d::Work> gather(std::vector<std::vector<at::Tensor>>& outputs,
                                        std::vector<at::Tensor>& inputs,
                                        const c10d::GatherOptions& opts) override;
  // gather into one flat tensor on the root (gather_single forwards here).
  c10::intrusive_ptr<c10d::Work> gather_into_tensor(at::Tensor& output, at::Tensor& input,
                                                    const c10d::GatherOptions& opts) override;
  c10::intrusive_ptr<c10d::Work> scatter(std::vector<at::Tensor>& outputs,
                                         std::vector<std::vector<at::Tensor>>& inputs,
                                         const c10d::ScatterOptions& opts) override;

  // All-to-all (process_group_alltoall.cc).
  c10::intrusive_ptr<c10d::Work> alltoall(std::vector<at::Tensor>& outputs,
                                          std::vector<at::Tensor>& inputs,
                                          const c10d::AllToAllOptions& opts) override;
  c10::intrusive_ptr<c10d::Work> alltoall_base(at::Tensor& output, at::Tensor& input,
                                               std::vector<int64_t>& output_split_sizes,
                                               std::vector<int64_t>& input_split_sizes,
                                               const c10d::AllToAllOptions& opts) override;

  // Synchronization (process_group_barrier.cc).
  c10::intrusive_ptr<c10d::Work> barrier(const c10d::BarrierOptions& opts) override;
  // Rank 0 waits for every other rank up to the timeout and names the ones that did not arrive
  // (all of them with wait_all_ranks, else the first); blocks, as Gloo's does.
  void monitoredBarrier(const c10d::BarrierOptions& opts, bool wait_all_ranks) override;

  // Point-to-point (process_group_p2p.cc).
  c10::intrusive_ptr<c10d::Work> send(std::vector<at::Tensor>& tensors, int dst_rank,
                                      int tag) override;
  c10::intrusive_ptr<c10d::Work> recv(std::vector<at::Tensor>& tensors, int src_rank,
                                      int tag) override;
  c10::intrusive_ptr<c10d::Work> recvAnysource(std::vector<at::Tensor>& tensors, int tag) override;

  // Splitting (process_group_split.cc): a child over some of this group's ranks shares this
  // group's transport device, as every later group does.
  bool supportsSplitting() const override { return true; }
  c10::intrusive_ptr<Options> getBackendOptions() override;
  // `ranks` are ranks of this group; returns null on a rank that is not among them.
  c10::intrusive_ptr<c10d::Backend> split(const c10::intrusive_ptr<c10d::Store>& store,
                                          const std::vector<int>& ranks,
                                          const c10::intrusive_ptr<Options>& opts) override;

  // Sequence numbers start at 0 on every rank and count collectives, so there is nothing to set.
  void setSequenceNumberForGroup() override {}
  uint64_t getSequenceNumberForGroup() override;
  void setTimeout(std::chrono::milliseconds timeout) override { timeout_ = timeout; }
  // Fails every pending operation at once; the group is unusable afterwards.
  void abort() override;
  // Lets queued collectives finish, cancels receives nobody will satisfy, releases connections.
  // Quiet and idempotent; called by destroy_process_group.
  void shutdown() override;

  const WanOptions& options() const { return options_; }
  // Whether this group opened no connections of its own: it runs over another group's device.
  bool shares_device() const { return shares_device_; }
  // The regions decided at construction, identical on every rank.
  const engine::GroupTopology& group_topology() const { return topology_; }
  // Per peer rank (index = rank) what this rank exchanged with it, and per collective its calls,
  // failures, bytes and time (torchwan.stats()).
  std::vector<transport::PeerTraffic> traffic() const;
  // Per peer rank the rung of the connection ladder that carries its lanes (empty: all direct).
  std::vector<transport::LinkRung> links() const;
  std::map<std::string, c10d_backend::CollectiveCounts> collective_counts() const {
    return collective_stats_.snapshot();
  }

  // The NCCL host tier (local_backend "nccl" or "auto", local_tier.h): `factory` makes the NCCL
  // group of this rank's host on the first CUDA allreduce that takes the host tier. torchwan's
  // Python registration sets it on every group; without one, "auto" keeps the host-memory tier
  // and "nccl" fails that allreduce.
  void set_local_tier_factory(c10d_backend::LocalTierFactory factory);
  // "not created", "nccl" (the host's NCCL group exists) or "host memory" (it was declined).
  std::string local_tier_state() const { return nccl_tier_->state(); }
  // The tier that carries the steps inside a host for an allreduce of `numel` elements of `type`
  // on a CUDA (`on_cuda`) or CPU tensor with `reduce_op` (local_tier_name: "none" when the call
  // does not take the host tier). Creates nothing.
  c10d_backend::LocalTier local_tier_for(bool on_cuda, at::ScalarType type, int64_t numel,
                                         const c10d::ReduceOp& reduce_op) const;

 private:
  // The staging is the body's to read its tensors and count the device copies it makes itself.
  using Body = std::function<void(const engine::CollectiveContext&, c10d_backend::Staging&)>;
  enum class PeerOp : uint8_t { kSend, kRecv, kRecvAny };

  // Queues one collective: assigns its sequence number, orders it after the caller's device work
  // and returns its Work. `body` runs on the collective thread over host tensors. A body that
  // makes several engine calls reserves one sequence number (wire tag space) for each: the
  // context carries the first, the others follow it.
  c10::intrusive_ptr<c10d::Work> submit(const c10d_backend::SignatureFields& fields,
                                        std::chrono::milliseconds op_timeout,
                                        std::vector<at::Tensor> outputs,
                                        std::shared_ptr<c10d_backend::Staging> staging, Body body,
                                        uint32_t sequence_numbers = 1);
  // The host's NCCL group when it carries this allreduce's steps inside the host (made on first
  // use); null when the call keeps the host-memory tier or takes no host tier.
  c10::intrusive_ptr<c10d::Backend> nccl_tier_for(const at::Tensor& tensor, engine::DataType dtype,
                                                  engine::ReduceOp op, bool compressed);
  c10::intrusive_ptr<c10d::Work> sparse_allreduce(const at::Tensor& tensor,
                                                  const c10d::AllreduceOptions& opts);
  c10::intrusive_ptr<c10d::Work> point_to_point(PeerOp op, const char* name,
                                                std::vector<at::Tensor>& tensors, int peer,
                                                int tag);
  // Completes a Work (runs its Future callbacks) on the completion threads, in issue order.
  void deliver(std::function<void()> completion);
  // Queues `completion` on the device's completion threads, counted so that shutdown() can wait
  // for this group's; false once the threads are stopping.
  [[nodiscard]] bool enqueue_completion(std::function<void()> completion);
  // Waits (a bounded time) until every completion this group queued has run.
  void drain_completions();
  void check_usable(const char* name) const;
  void check_root(int root, const char* name) const;
  std::chrono::milliseconds effective_timeout(std::chrono::milliseconds op_timeout) const;
  std::string error_context(const char* name, uint64_t seq) const;
  void forget_request(uint64_t id);

  WanOptions options_;
  std::atomic<std::chrono::milliseconds> timeout_;
  // Shared with every group over the same device; created by the group that created the device.
  std::shared_ptr<c10d_backend::SharedDevice> shared_;
  bool shares_device_ = false;
  // The device rank of each rank of this group.
  std::vector<int> device_ranks_;
  // This group's view of the device (the identity view for the group that created it).
  std::unique_ptr<transport::Transport> transport_;
  engine::GroupTopology topology_;  // read by every collective; set once at construction
  std::unique_ptr<engine::ScratchPool> scratch_;  // the collectives' temporaries, between calls
  // When ranks of this group share a host: the segments large allreduces use there (set up on
  // first use). Collective thread only.
  std::unique_ptr<engine::HostSharedMemory> host_memory_;
  std::unique_ptr<c10d_backend::DeviceStreams> streams_;
  std::unique_ptr<c10d_backend::PinnedSlots> pinned_;  // collective thread only
  // Collectives run here in issue order, one at a time.
  std::unique_ptr<c10d_backend::OpRunner> collectives_;
  // Point-to-point operations are posted here in issue order (staging may block on a device).
  std::unique_ptr<c10d_backend::OpRunner> peer_ops_;
  // Completions queued on shared_->completions() and not yet run; point-to-point completions go
  // there too, so that user callbacks and device copies never run on the progress thread.
  std::shared_ptr<c10d_backend::PendingCounter> completions_pending_;
  std::mutex issue_mutex_;
  uint64_t collective_seq_ = 0;
  c10d_backend::CollectiveStats collective_stats_;
  // Point-to-point requests in flight, canceled by shutdown().
  std::mutex requests_mutex_;
  std::condition_variable requests_done_;
  std::unordered_map<uint64_t, std::shared_ptr<transport::Request>> requests_;
  uint64_t requests_issued_ = 0;
  uint64_t requests_unfinished_ = 0;
  std::atomic<bool> closed_{false};
  std::unique_ptr<c10d_backend::NcclTier> nccl_tier_;
};

}  // namespace torchwan
