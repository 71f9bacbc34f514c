// The "wan" c10d backend: torch's collectives over the torchwan engine and transports.
// Public header: C++ training code builds one from a c10d::Store (see examples/cpp).
#pragma once

#include <torch/csrc/distributed/c10d/Backend.hpp>
#include <torch/csrc/distributed/c10d/Store.hpp>
#include <torch/csrc/distributed/c10d/Types.hpp>
#include <torch/csrc/distributed/c10d/Work.hpp>

#include <atomic>
#include <chrono>
#include <functional>
#include <memory>
#include <mutex>
#include <string>

#include "transport/options.h"

namespace torchwan::transport {
class Transport;
}
namespace torchwan::engine {
struct CollectiveContext;
}

namespace torchwan {

namespace c10d_backend {
class OpRunner;
}

struct WanOptions {
  // Defaults come from the TORCHWAN_* environment, so shell settings apply to unmodified scripts.
  transport::TransportOptions transport = transport::TransportOptions::from_env();
  // Deadline of every operation that does not set its own.
  std::chrono::milliseconds timeout = std::chrono::minutes(30);  // torch's default
  // Shown in error messages so a user can tell groups apart.
  std::string group_name;
};

class ProcessGroupWan final : public c10d::Backend {
 public:
  // Connects to every other rank through `store`; returns when the group is ready.
  ProcessGroupWan(const c10::intrusive_ptr<c10d::Store>& store, int rank, int size,
                  WanOptions options = {});
  ~ProcessGroupWan() override;

  const std::string getBackendName() const override { return "wan"; }

  c10::intrusive_ptr<c10d::Work> broadcast(std::vector<at::Tensor>& tensors,
                                           const c10d::BroadcastOptions& opts) override;
  c10::intrusive_ptr<c10d::Work> allreduce(std::vector<at::Tensor>& tensors,
                                           const c10d::AllreduceOptions& opts) override;
  c10::intrusive_ptr<c10d::Work> allgather(std::vector<std::vector<at::Tensor>>& outputs,
                                           std::vector<at::Tensor>& inputs,
                                           const c10d::AllgatherOptions& opts) override;
  c10::intrusive_ptr<c10d::Work> _allgather_base(at::Tensor& output, at::Tensor& input,
                                                 const c10d::AllgatherOptions& opts) override;
  c10::intrusive_ptr<c10d::Work> barrier(const c10d::BarrierOptions& opts) override;
  c10::intrusive_ptr<c10d::Work> send(std::vector<at::Tensor>& tensors, int dst_rank,
                                      int tag) override;
  c10::intrusive_ptr<c10d::Work> recv(std::vector<at::Tensor>& tensors, int src_rank,
                                      int tag) override;

  void setSequenceNumberForGroup() override {}
  uint64_t getSequenceNumberForGroup() override { return collective_seq_; }
  void setTimeout(std::chrono::milliseconds timeout) override { timeout_ = timeout; }
  // Fails every pending operation at once; the group is unusable afterwards.
  void abort() override;
  // Lets queued operations finish, then releases the connections.
  void shutdown() override;

  const WanOptions& options() const { return options_; }

 private:
  using CollectiveBody = std::function<void(const engine::CollectiveContext&)>;

  c10::intrusive_ptr<c10d::Work> run_collective(c10d::OpType type, const char* name,
                                                std::vector<at::Tensor> outputs,
                                                std::chrono::milliseconds op_timeout,
                                                CollectiveBody body);
  c10::intrusive_ptr<c10d::Work> run_point_to_point(c10d::OpType type, const char* name,
                                                    at::Tensor tensor, int peer, int tag);
  void check_usable(const char* name) const;
  void check_peer(int peer, const char* name) const;
  std::exception_ptr backend_error(const char* name, uint64_t seq, const std::string& cause) const;

  WanOptions options_;
  std::atomic<std::chrono::milliseconds> timeout_;
  std::unique_ptr<transport::Transport> transport_;
  // Collectives run here in issue order; point-to-point completions are delivered here so that
  // user callbacks never run on the transport's progress thread.
  std::unique_ptr<c10d_backend::OpRunner> collectives_;
  std::unique_ptr<c10d_backend::OpRunner> completions_;
  std::mutex issue_mutex_;
  uint64_t collective_seq_ = 0;
  std::atomic<bool> closed_{false};
};

}  // namespace torchwan
