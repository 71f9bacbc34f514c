// all_reduce of sparse COO tensors (DDP's gradients of nn.Embedding(sparse=True)), the way Gloo
// does it: every rank gathers every rank's coalesced indices and values, adds the tensors in rank
// order and coalesces the sum, so the result is Gloo's to the bit. Two engine calls: the nonzero
// counts (fixed size, with the call's signature check), then the indices and values of uneven
// sizes, exchanged exactly (no padding to the largest rank).
#include <c10/util/Exception.h>

#include <algorithm>
#include <cstring>
#include <string>
#include <vector>

#include "c10d_backend/process_group_wan.h"
#include "c10d_backend/signature.h"
#include "c10d_backend/staging.h"
#include "c10d_backend/tensor_types.h"
#include "csrc/collectives.h"
#include "transport/errors.h"

namespace torchwan {

using c10d_backend::Staging;

namespace {

// What every rank tells the others before the data: its nonzero count and the layout that must
// agree (sparse and dense dimensions, and a digest of the shape).
constexpr int64_t kMetadataFields = 4;

int64_t shape_digest(at::IntArrayRef sizes) {
  uint64_t digest = 1469598103934665603ull;  // FNV-1a over the sizes
  for (const int64_t size : sizes) {
    digest = (digest ^ static_cast<uint64_t>(size)) * 1099511628211ull;
  }
  return static_cast<int64_t>(digest >> 1);
}

// This rank's indices (sparse_dim x nnz, int64) followed by its values, as bytes.
at::Tensor pack(const at::Tensor& coalesced) {
  const at::Tensor indices = coalesced._indices().contiguous();
  const at::Tensor values = coalesced._values().contiguous();
  at::Tensor bytes = at::empty({static_cast<int64_t>(indices.nbytes() + values.nbytes())},
                               at::TensorOptions().dtype(at::kByte));
  if (indices.nbytes() > 0) {
    std::memcpy(bytes.mutable_data_ptr(), indices.const_data_ptr(), indices.nbytes());
  }
  if (values.nbytes() > 0) {
    std::memcpy(static_cast<uint8_t*>(bytes.mutable_data_ptr()) + indices.nbytes(),
                values.const_data_ptr(), values.nbytes());
  }
  return bytes;
}

// The bytes one nonzero takes in pack()'s layout: its indices and its row of values.
size_t bytes_per_nonzero(const at::Tensor& coalesced) {
  const at::Tensor values = coalesced._values();
  const auto row = c10::multiply_integers(values.sizes().begin() + 1, values.sizes().end());
  return static_cast<size_t>(coalesced.sparse_dim()) * sizeof(int64_t) +
         static_cast<size_t>(values.element_size()) * static_cast<size_t>(row);
}

// Gloo's reduction: every rank's tensor, added in rank order, then coalesced.
at::Tensor sum_in_rank_order(const at::Tensor& like, const at::Tensor& gathered,
                             const std::vector<size_t>& offsets, const std::vector<int64_t>& nnz) {
  std::vector<int64_t> value_shape = like._values().sizes().vec();
  const auto* base = static_cast<const uint8_t*>(gathered.const_data_ptr());
  at::Tensor sum;
  for (size_t rank = 0; rank < nnz.size(); ++rank) {
    at::Tensor indices = at::empty({like.sparse_dim(), nnz[rank]}, like._indices().options());
    value_shape[0] = nnz[rank];
    at::Tensor values = at::empty(value_shape, like._values().options());
    if (nnz[rank] > 0) {
      std::memcpy(indices.mutable_data_ptr(), base + offsets[rank], indices.nbytes());
      std::memcpy(values.mutable_data_ptr(), base + offsets[rank] + indices.nbytes(),
                  values.nbytes());
    }
    at::Tensor term = at::sparse_coo_tensor(indices, values, like.sizes(), like.options());
    sum = rank == 0 ? term : sum + term;
  }
  return sum.coalesce();
}

void check_layouts(const std::vector<int64_t>& metadata, const int64_t* mine, int rank) {
  const auto world = static_cast<int>(metadata.size() / kMetadataFields);
  for (int peer = 0; peer < world; ++peer) {
    const int64_t* theirs = metadata.data() + peer * kMetadataFields;
    if (std::equal(theirs + 1, theirs + kMetadataFields, mine + 1)) continue;
    throw transport::TransportError(transport::ErrorKind::kMismatch,
                                    "sparse tensors differ: rank " + std::to_string(peer) +
                                        " has " + std::to_string(theirs[1]) + " sparse and " +
                                        std::to_string(theirs[2]) + " dense dimensions, rank " +
                                        std::to_string(rank) + " has " + std::to_string(mine[1]) +
                                        " and " + std::to_string(mine[2]) +
                                        (theirs[3] != mine[3] ? ", and their shapes differ" : ""),
                                    peer);
  }
}

void sparse_allreduce_body(const engine::CollectiveContext& context, const at::Tensor& tensor) {
  const at::Tensor input = tensor.coalesce();
  const int world = context.transport.size();
  const int64_t mine[kMetadataFields] = {input._nnz(), input.sparse_dim(), input.dense_dim(),
                                         shape_digest(input.sizes())};
  std::vector<int64_t> metadata(static_cast<size_t>(world * kMetadataFields));
  engine::allgather(context, mine, metadata.data(), sizeof(mine));
  check_layouts(metadata, mine, context.transport.rank());

  const at::Tensor packed = pack(input);
  const auto peers = static_cast<size_t>(world);
  std::vector<int64_t> nnz(peers);
  std::vector<size_t> send_offsets(peers, 0), send_bytes(peers, packed.nbytes());
  std::vector<size_t> recv_offsets(peers), recv_bytes(peers);
  size_t total = 0;
  for (size_t peer = 0; peer < peers; ++peer) {
    nnz[peer] = metadata[peer * kMetadataFields];
    recv_offsets[peer] = total;
    recv_bytes[peer] = static_cast<size_t>(nnz[peer]) * bytes_per_nonzero(input);
    total += recv_bytes[peer];
  }
  at::Tensor gathered =
      at::empty({static_cast<int64_t>(total)}, at::TensorOptions().dtype(at::kByte));
  engine::CollectiveContext data_context = context;
  data_context.seq = context.seq + 1;  // the second sequence number submit() reserved
  data_context.signature = nullptr;    // the first call checked it; these sizes differ by rank
  engine::alltoallv(data_context, packed.nbytes() > 0 ? packed.const_data_ptr() : nullptr,
                    send_offsets, send_bytes, total > 0 ? gathered.mutable_data_ptr() : nullptr,
                    recv_offsets, recv_bytes);
  // Sparse copy_ replaces the tensor's indices and values, as Gloo's copy back does.
  tensor.copy_(sum_in_rank_order(input, gathered, recv_offsets, nnz));
}

}  // namespace

c10::intrusive_ptr<c10d::Work> ProcessGroupWan::sparse_allreduce(
    const at::Tensor& tensor, const c10d::AllreduceOptions& opts) {
  constexpr const char* kName = "all_reduce";
  TORCH_CHECK_VALUE(tensor.layout() == at::kSparse, "torchwan ", kName,
                    ": sparse tensors must have the COO layout (torch.sparse_coo), got ",
                    tensor.layout());
  TORCH_CHECK_VALUE(opts.reduceOp == c10d::ReduceOp::SUM, "torchwan ", kName,
                    ": sparse tensors are reduced with SUM only (as with Gloo), got ",
                    c10d_backend::reduce_op_label(opts.reduceOp.op_));
  TORCH_CHECK_VALUE(tensor.device().is_cpu(), "torchwan ", kName,
                    ": sparse tensors must be on the CPU, got one on ", tensor.device());
  c10d_backend::engine_dtype(tensor.scalar_type(), kName);
  const auto dense_numel = static_cast<uint64_t>(c10::multiply_integers(tensor.sizes()));
  c10d_backend::SignatureFields fields{c10d::OpType::ALLREDUCE, "all_reduce(sparse)",
                                       tensor.scalar_type(), dense_numel, c10d::ReduceOp::SUM};
  return submit(
      fields, opts.timeout, {tensor}, std::make_shared<Staging>(kName),
      [tensor](const engine::CollectiveContext& context, const Staging&) {
        sparse_allreduce_body(context, tensor);
      },
      /*sequence_numbers=*/2);
}

c10::intrusive_ptr<c10d::Work> ProcessGroupWan::allreduce_sparse(
    std::vector<at::Tensor>& tensors, const c10d::AllreduceOptions& opts) {
  // Torch routes sparse tensors here; allreduce() takes them too, and dense ones go there.
  const at::Tensor& tensor = c10d_backend::single_tensor(tensors, "all_reduce");
  if (!tensor.is_sparse()) return allreduce(tensors, opts);
  return sparse_allreduce(tensor, opts);
}

}  // namespace torchwan
