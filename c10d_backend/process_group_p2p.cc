// send, recv and recv-from-any-source. They bypass the collective queue (they carry no sequence
// number), are posted in issue order so that messages with the same (peer, tag) match in order,
// and complete on a thread of their own so that Future callbacks never run on the transport's
// progress thread.
#include <c10/util/Exception.h>

#include "c10d_backend/errors.h"
#include "c10d_backend/op_runner.h"
#include "c10d_backend/process_group_wan.h"
#include "c10d_backend/staging.h"
#include "c10d_backend/tensor_types.h"
#include "c10d_backend/wan_work.h"
#include "csrc/collectives.h"
#include "transport/transport.h"

namespace torchwan {

using c10d_backend::WanWork;

namespace {

std::exception_ptr rethrow_as_wan_error(const std::string& context, std::exception_ptr error) {
  try {
    std::rethrow_exception(error);
  } catch (const std::exception& cause) {
    return c10d_backend::wan_error(context, cause);
  }
}

}  // namespace

void ProcessGroupWan::forget_request(uint64_t id) {
  std::lock_guard<std::mutex> lock(requests_mutex_);
  requests_.erase(id);
  --requests_unfinished_;
  requests_done_.notify_all();
}

c10::intrusive_ptr<c10d::Work> ProcessGroupWan::point_to_point(PeerOp op, const char* name,
                                                               std::vector<at::Tensor>& tensors,
                                                               int peer, int tag) {
  check_usable(name);
  if (op != PeerOp::kRecvAny) {
    TORCH_CHECK_VALUE(peer >= 0 && peer < size_ && peer != rank_, "torchwan ", name, ": rank ",
                      peer, " is not a valid peer of rank ", rank_, " in a group of size ", size_);
  }
  TORCH_CHECK_VALUE(tag >= 0, "torchwan ", name, ": tag must not be negative, got ", tag);
  const at::Tensor& tensor = c10d_backend::single_tensor(tensors, name);
  c10d_backend::engine_dtype(tensor.scalar_type(), name);
  auto staging = std::make_shared<c10d_backend::Staging>(name);
  staging->add(tensor,
               op == PeerOp::kSend ? c10d_backend::Access::kRead : c10d_backend::Access::kWrite);
  staging->issue(*streams_);
  const auto type = op == PeerOp::kSend   ? c10d::OpType::SEND
                    : op == PeerOp::kRecv ? c10d::OpType::RECV
                                          : c10d::OpType::RECVANYSOURCE;
  auto work = c10::make_intrusive<WanWork>(rank_, type, 0, name, std::vector<at::Tensor>{tensor},
                                           staging->devices());
  uint64_t id = 0;
  {
    std::lock_guard<std::mutex> lock(requests_mutex_);
    id = ++requests_issued_;
    ++requests_unfinished_;
  }
  const std::string context = error_context(name, 0);

  auto on_done = [this, work, staging, id, context](transport::Request& request) {
    std::exception_ptr error = request.error();
    const int source = request.source();
    const bool queued = enqueue_completion([this, work, staging, id, context, error, source] {
      if (error) {
        work->complete_with_error(rethrow_as_wan_error(context, error));
      } else {
        try {
          staging->stage_out();
          work->set_source_rank(source);
          work->complete(staging->stream());
        } catch (const std::exception& cause) {
          work->complete_with_error(c10d_backend::wan_error(context, cause));
        }
      }
      forget_request(id);
    });
    if (!queued) {
      work->complete_with_error(
          c10d_backend::make_error<WanAbortedError>(context + ": the process group shut down"));
      forget_request(id);
    }
  };

  auto post = [this, op, peer, tag, staging, id, context, work, on_done] {
    std::shared_ptr<transport::Request> request;
    try {
      staging->stage_in(nullptr);
      const at::Tensor& host = staging->host(0);
      const auto wire_tag = engine::p2p_tag(static_cast<uint32_t>(tag));
      if (op == PeerOp::kSend) {
        request = transport_->isend(peer, wire_tag, host.const_data_ptr(), host.nbytes(), on_done);
      } else if (op == PeerOp::kRecv) {
        request =
            transport_->irecv(peer, wire_tag, host.mutable_data_ptr(), host.nbytes(), on_done);
      } else {
        request = transport_->irecv_any(wire_tag, host.mutable_data_ptr(), host.nbytes(), on_done);
      }
    } catch (const std::exception& cause) {
      work->complete_with_error(c10d_backend::wan_error(context, cause));
      forget_request(id);
      return;
    }
    std::lock_guard<std::mutex> lock(requests_mutex_);
    // A request that already completed has been forgotten; only pending ones are kept to cancel.
    if (!request->done()) requests_.emplace(id, std::move(request));
  };
  if (!peer_ops_->enqueue(std::move(post))) {
    forget_request(id);
    check_usable(name);
  }
  return work;
}

c10::intrusive_ptr<c10d::Work> ProcessGroupWan::send(std::vector<at::Tensor>& tensors, int dst_rank,
                                                     int tag) {
  return point_to_point(PeerOp::kSend, "send", tensors, dst_rank, tag);
}

c10::intrusive_ptr<c10d::Work> ProcessGroupWan::recv(std::vector<at::Tensor>& tensors, int src_rank,
                                                     int tag) {
  return point_to_point(PeerOp::kRecv, "recv", tensors, src_rank, tag);
}

c10::intrusive_ptr<c10d::Work> ProcessGroupWan::recvAnysource(std::vector<at::Tensor>& tensors,
                                                              int tag) {
  return point_to_point(PeerOp::kRecvAny, "recv_anysource", tensors, -1, tag);
}

}  // namespace torchwan
