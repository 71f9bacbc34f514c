#include "c10d_backend/process_group_wan.h"

#include <c10/util/Exception.h>

#include "c10d_backend/op_runner.h"
#include "c10d_backend/store_adapter.h"
#include "c10d_backend/tensor_types.h"
#include "c10d_backend/wan_work.h"
#include "csrc/collectives.h"
#include "transport/transport.h"

namespace torchwan {

using c10d_backend::engine_dtype;
using c10d_backend::engine_reduce_op;
using c10d_backend::single_dense_tensor;
using c10d_backend::WanWork;

namespace {

std::unique_ptr<transport::Transport> connect_transport(const c10::intrusive_ptr<c10d::Store>& store,
                                                        int rank, int size,
                                                        const WanOptions& options) {
  c10d_backend::C10dStoreAdapter adapter(store);
  try {
    return transport::Transport::create(options.transport, adapter, rank, size);
  } catch (const std::exception& error) {
    C10_THROW_ERROR(DistBackendError, std::string("torchwan: group '") + options.group_name +
                                          "' rank " + std::to_string(rank) + "/" +
                                          std::to_string(size) +
                                          " could not connect: " + error.what());
  }
}

}  // namespace

ProcessGroupWan::ProcessGroupWan(const c10::intrusive_ptr<c10d::Store>& store, int rank, int size,
                                 WanOptions options)
    : c10d::Backend(rank, size),
      options_(std::move(options)),
      timeout_(options_.timeout),
      transport_(connect_transport(store, rank, size, options_)),
      collectives_(std::make_unique<c10d_backend::OpRunner>()),
      completions_(std::make_unique<c10d_backend::OpRunner>()) {
  init();
}

ProcessGroupWan::~ProcessGroupWan() { shutdown(); }

void ProcessGroupWan::abort() {
  if (closed_.exchange(true)) return;
  transport_->abort("process group aborted");
  collectives_->stop();
  completions_->stop();
}

void ProcessGroupWan::shutdown() {
  if (closed_.exchange(true)) return;
  collectives_->stop();
  // Whatever is still pending (a recv nobody sends to) fails instead of holding the connections.
  transport_->abort("process group shut down");
  completions_->stop();
}

void ProcessGroupWan::check_usable(const char* name) const {
  TORCH_CHECK(!closed_, "torchwan ", name, ": the process group was shut down or aborted");
}

void ProcessGroupWan::check_peer(int peer, const char* name) const {
  TORCH_CHECK_VALUE(peer >= 0 && peer < size_ && peer != rank_, "torchwan ", name, ": rank ",
                    peer, " is not a valid peer of rank ", rank_, " in a group of size ", size_);
}

std::exception_ptr ProcessGroupWan::backend_error(const char* name, uint64_t seq,
                                                  const std::string& cause) const {
  try {
    C10_THROW_ERROR(DistBackendError, std::string("torchwan ") + name + " #" +
                                          std::to_string(seq) + " on rank " +
                                          std::to_string(rank_) + " (group '" +
                                          options_.group_name + "') failed: " + cause);
  } catch (...) {
    return std::current_exception();
  }
}

c10::intrusive_ptr<c10d::Work> ProcessGroupWan::run_collective(c10d::OpType type, const char* name,
                                                               std::vector<at::Tensor> outputs,
                                                               std::chrono::milliseconds op_timeout,
                                                               CollectiveBody body) {
  check_usable(name);
  const auto timeout = op_timeout == c10d::kUnsetTimeout ? timeout_.load() : op_timeout;
  // Sequence numbers double as wire tags, so assigning one and queueing the op is one step.
  std::lock_guard<std::mutex> lock(issue_mutex_);
  const uint64_t seq = ++collective_seq_;
  auto work = c10::make_intrusive<WanWork>(rank_, type, seq, name, std::move(outputs));
  collectives_->enqueue([this, work, seq, timeout, name, body = std::move(body)] {
    try {
      const engine::CollectiveContext context{*transport_, static_cast<uint32_t>(seq),
                                              std::chrono::steady_clock::now() + timeout};
      body(context);
      work->complete();
    } catch (const std::exception& error) {
      work->complete_with_error(backend_error(name, seq, error.what()));
    }
  });
  return work;
}

c10::intrusive_ptr<c10d::Work> ProcessGroupWan::run_point_to_point(c10d::OpType type,
                                                                   const char* name,
                                                                   at::Tensor tensor, int peer,
                                                                   int tag) {
  check_usable(name);
  check_peer(peer, name);
  TORCH_CHECK_VALUE(tag >= 0, "torchwan ", name, ": tag must not be negative, got ", tag);
  auto work = c10::make_intrusive<WanWork>(rank_, type, 0, name, std::vector<at::Tensor>{tensor});
  auto on_done = [this, work, name](transport::Request& request) {
    std::exception_ptr error = request.error();
    completions_->enqueue([this, work, name, error] {
      if (!error) return work->complete();
      try {
        std::rethrow_exception(error);
      } catch (const std::exception& cause) {
        work->complete_with_error(backend_error(name, 0, cause.what()));
      }
    });
  };
  const auto wire_tag = engine::p2p_tag(static_cast<uint32_t>(tag));
  if (type == c10d::OpType::SEND) {
    transport_->isend(peer, wire_tag, tensor.const_data_ptr(), tensor.nbytes(), on_done);
  } else {
    transport_->irecv(peer, wire_tag, tensor.mutable_data_ptr(), tensor.nbytes(), on_done);
  }
  return work;
}

c10::intrusive_ptr<c10d::Work> ProcessGroupWan::broadcast(std::vector<at::Tensor>& tensors,
                                                          const c10d::BroadcastOptions& opts) {
  const at::Tensor& tensor = single_dense_tensor(tensors, "broadcast");
  engine_dtype(tensor.scalar_type(), "broadcast");
  const int root = static_cast<int>(opts.rootRank);
  TORCH_CHECK_VALUE(root >= 0 && root < size_, "torchwan broadcast: root rank ", root,
                    " is outside the group of size ", size_);
  return run_collective(c10d::OpType::BROADCAST, "broadcast", {tensor}, opts.timeout,
                        [tensor, root](const engine::CollectiveContext& context) {
                          engine::broadcast(context, tensor.mutable_data_ptr(), tensor.nbytes(),
                                            root);
                        });
}

c10::intrusive_ptr<c10d::Work> ProcessGroupWan::allreduce(std::vector<at::Tensor>& tensors,
                                                          const c10d::AllreduceOptions& opts) {
  const at::Tensor& tensor = single_dense_tensor(tensors, "allreduce");
  const engine::DataType dtype = engine_dtype(tensor.scalar_type(), "allreduce");
  const engine::ReduceOp op = engine_reduce_op(opts.reduceOp, tensor.scalar_type(), "allreduce");
  const c10d::ReduceOp::RedOpType kind = opts.reduceOp.op_;
  std::optional<at::Tensor> premul_factor;
  if (kind == c10d::ReduceOp::PREMUL_SUM) {
    const auto* supplement =
        dynamic_cast<const c10d::NCCLPreMulSumSupplement*>(opts.reduceOp.supplement_.get());
    TORCH_CHECK_VALUE(supplement != nullptr, "torchwan allreduce: PREMUL_SUM without a factor");
    premul_factor = supplement->tensor_factor.defined()
                        ? supplement->tensor_factor
                        : at::scalar_tensor(supplement->double_factor, at::kDouble);
  }
  const int world = size_;
  return run_collective(
      c10d::OpType::ALLREDUCE, "allreduce", {tensor}, opts.timeout,
      [tensor, dtype, op, kind, premul_factor, world](const engine::CollectiveContext& context) {
        at::Tensor target = tensor;
        if (premul_factor) target.mul_(*premul_factor);
        engine::allreduce(context, target.mutable_data_ptr(), static_cast<size_t>(target.numel()),
                          dtype, op);
        if (kind == c10d::ReduceOp::AVG) target.div_(world);
      });
}

c10::intrusive_ptr<c10d::Work> ProcessGroupWan::_allgather_base(
    at::Tensor& output, at::Tensor& input, const c10d::AllgatherOptions& opts) {
  const at::Tensor in = input;
  const at::Tensor out = output;
  c10d_backend::check_dense_cpu(in, "all_gather_into_tensor");
  c10d_backend::check_dense_cpu(out, "all_gather_into_tensor");
  engine_dtype(in.scalar_type(), "all_gather_into_tensor");
  TORCH_CHECK_TYPE(in.scalar_type() == out.scalar_type(),
                   "torchwan all_gather_into_tensor: input dtype ", in.scalar_type(),
                   " differs from output dtype ", out.scalar_type());
  TORCH_CHECK_VALUE(out.numel() == in.numel() * size_,
                    "torchwan all_gather_into_tensor: output has ", out.numel(),
                    " elements, expected world size x input = ", in.numel() * size_);
  return run_collective(c10d::OpType::_ALLGATHER_BASE, "all_gather_into_tensor", {out},
                        opts.timeout, [in, out](const engine::CollectiveContext& context) {
                          engine::allgather(context, in.const_data_ptr(), out.mutable_data_ptr(),
                                            in.nbytes());
                        });
}

c10::intrusive_ptr<c10d::Work> ProcessGroupWan::allgather(
    std::vector<std::vector<at::Tensor>>& outputs, std::vector<at::Tensor>& inputs,
    const c10d::AllgatherOptions& opts) {
  const at::Tensor& in = single_dense_tensor(inputs, "all_gather");
  engine_dtype(in.scalar_type(), "all_gather");
  TORCH_CHECK_VALUE(outputs.size() == 1 && static_cast<int>(outputs[0].size()) == size_,
                    "torchwan all_gather: expects one output list of world size ", size_);
  for (const at::Tensor& out : outputs[0]) {
    TORCH_CHECK_VALUE(out.numel() == in.numel() && out.scalar_type() == in.scalar_type(),
                      "torchwan all_gather: every output tensor must match the input's size "
                      "and dtype");
  }
  std::vector<at::Tensor> outs = outputs[0];
  return run_collective(c10d::OpType::ALLGATHER, "all_gather", outs, opts.timeout,
                        [in, outs](const engine::CollectiveContext& context) {
                          at::Tensor flat = at::empty({static_cast<int64_t>(outs.size()),
                                                       in.numel()},
                                                      in.options());
                          engine::allgather(context, in.const_data_ptr(), flat.mutable_data_ptr(),
                                            in.nbytes());
                          for (size_t i = 0; i < outs.size(); ++i) {
                            outs[i].copy_(flat[static_cast<int64_t>(i)].view(outs[i].sizes()));
                          }
                        });
}

c10::intrusive_ptr<c10d::Work> ProcessGroupWan::barrier(const c10d::BarrierOptions& opts) {
  return run_collective(c10d::OpType::BARRIER, "barrier", {}, opts.timeout,
                        [](const engine::CollectiveContext& context) { engine::barrier(context); });
}

c10::intrusive_ptr<c10d::Work> ProcessGroupWan::send(std::vector<at::Tensor>& tensors,
                                                     int dst_rank, int tag) {
  const at::Tensor& tensor = single_dense_tensor(tensors, "send");
  engine_dtype(tensor.scalar_type(), "send");
  return run_point_to_point(c10d::OpType::SEND, "send", tensor, dst_rank, tag);
}

c10::intrusive_ptr<c10d::Work> ProcessGroupWan::recv(std::vector<at::Tensor>& tensors,
                                                     int src_rank, int tag) {
  const at::Tensor& tensor = single_dense_tensor(tensors, "recv");
  engine_dtype(tensor.scalar_type(), "recv");
  return run_point_to_point(c10d::OpType::RECV, "recv", tensor, src_rank, tag);
}

}  // namespace torchwan
