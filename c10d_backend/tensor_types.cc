#include "c10d_backend/tensor_types.h"

#include <c10/util/Exception.h>

namespace torchwan::c10d_backend {

engine::DataType engine_dtype(at::ScalarType type, const char* op_name) {
  switch (type) {
    case at::kBool:
      return engine::DataType::kBool;
    case at::kByte:
      return engine::DataType::kUInt8;
    case at::kChar:
      return engine::DataType::kInt8;
    case at::kShort:
      return engine::DataType::kInt16;
    case at::kInt:
      return engine::DataType::kInt32;
    case at::kLong:
      return engine::DataType::kInt64;
    case at::kHalf:
      return engine::DataType::kFloat16;
    case at::kBFloat16:
      return engine::DataType::kBFloat16;
    case at::kFloat:
      return engine::DataType::kFloat32;
    case at::kDouble:
      return engine::DataType::kFloat64;
    case at::kComplexFloat:
      return engine::DataType::kComplex64;
    case at::kComplexDouble:
      return engine::DataType::kComplex128;
    case at::kFloat8_e4m3fn:
      return engine::DataType::kFloat8E4M3;
    case at::kFloat8_e5m2:
      return engine::DataType::kFloat8E5M2;
    default:
      TORCH_CHECK_TYPE(false, "torchwan ", op_name, ": unsupported tensor dtype ", type);
  }
}

engine::ReduceOp engine_reduce_op(const c10d::ReduceOp& op, at::ScalarType type,
                                  const char* op_name) {
  const engine::DataType dtype = engine_dtype(type, op_name);
  engine::ReduceOp result = engine::ReduceOp::kSum;
  switch (op.op_) {
    case c10d::ReduceOp::SUM:
      result = engine::ReduceOp::kSum;
      break;
    case c10d::ReduceOp::AVG:
    case c10d::ReduceOp::PREMUL_SUM:
      TORCH_CHECK_VALUE(engine::is_floating(dtype), "torchwan ", op_name,
                        ": ReduceOp AVG and PREMUL_SUM need a floating-point tensor, got ", type);
      result = engine::ReduceOp::kSum;
      break;
    case c10d::ReduceOp::PRODUCT:
      result = engine::ReduceOp::kProduct;
      break;
    case c10d::ReduceOp::MIN:
      result = engine::ReduceOp::kMin;
      break;
    case c10d::ReduceOp::MAX:
      result = engine::ReduceOp::kMax;
      break;
    case c10d::ReduceOp::BAND:
      result = engine::ReduceOp::kBand;
      break;
    case c10d::ReduceOp::BOR:
      result = engine::ReduceOp::kBor;
      break;
    case c10d::ReduceOp::BXOR:
      result = engine::ReduceOp::kBxor;
      break;
    default:
      TORCH_CHECK_VALUE(false, "torchwan ", op_name, ": unsupported reduce op ",
                        static_cast<int>(op.op_));
  }
  TORCH_CHECK_VALUE(engine::reduce_supported(dtype, result), "torchwan ", op_name, ": reduce op ",
                    engine::reduce_op_name(result), " is not defined for dtype ", type);
  return result;
}

const at::Tensor& single_tensor(const std::vector<at::Tensor>& tensors, const char* op_name) {
  TORCH_CHECK_VALUE(tensors.size() == 1, "torchwan ", op_name,
                    ": expects exactly one tensor per call, got ", tensors.size());
  return tensors[0];
}

void check_same_dtype(const std::vector<at::Tensor>& tensors, at::ScalarType type,
                      const char* op_name) {
  for (const at::Tensor& tensor : tensors) {
    TORCH_CHECK_TYPE(tensor.scalar_type() == type, "torchwan ", op_name,
                     ": all tensors must have the same dtype, got ", type, " and ",
                     tensor.scalar_type());
  }
}

void check_numel(const at::Tensor& tensor, int64_t numel, const char* op_name, const char* what) {
  TORCH_CHECK_VALUE(tensor.numel() == numel, "torchwan ", op_name, ": ", what, " has ",
                    tensor.numel(), " elements, expected ", numel);
}

ReduceScaling::ReduceScaling(const c10d::ReduceOp& op, int world_size, const char* op_name)
    : average_(op.op_ == c10d::ReduceOp::AVG), world_size_(world_size) {
  if (op.op_ != c10d::ReduceOp::PREMUL_SUM) return;
  const auto* supplement = dynamic_cast<const c10d::NCCLPreMulSumSupplement*>(op.supplement_.get());
  TORCH_CHECK_VALUE(supplement != nullptr, "torchwan ", op_name, ": PREMUL_SUM without a factor");
  if (supplement->tensor_factor.defined()) {
    TORCH_CHECK_VALUE(supplement->tensor_factor.numel() == 1, "torchwan ", op_name,
                      ": the PREMUL_SUM factor must be a single-element tensor");
    // Read once on the caller's thread, after the caller's stream has produced it.
    factor_ = supplement->tensor_factor.detach().to(at::kCPU).to(at::kDouble).reshape({});
  } else {
    factor_ = at::scalar_tensor(supplement->double_factor, at::kDouble);
  }
}

namespace {

// torch has no arithmetic on float8 on the CPU: scale through float32 and round back.
void scale_in_place(at::Tensor& host, const at::Tensor& factor, bool divide) {
  const bool narrow = at::isFloat8Type(host.scalar_type());
  at::Tensor work = narrow ? host.to(at::kFloat) : host;
  // On a CUDA tensor (the compressed allreduce works there), a CPU scalar divisor would make
  // torch multiply by its reciprocal, which can differ from the CPU's division in the last bit;
  // a divisor on the device divides as the CPU does.
  const at::Tensor by = work.is_cuda() ? factor.to(work.device()) : factor;
  if (divide) {
    work.div_(by);
  } else {
    work.mul_(by);
  }
  if (narrow) host.copy_(work);
}

}  // namespace

void ReduceScaling::premultiply(at::Tensor& host) const {
  if (factor_) scale_in_place(host, *factor_, /*divide=*/false);
}

void ReduceScaling::finish(at::Tensor& host) const {
  if (average_) scale_in_place(host, at::scalar_tensor(world_size_, at::kDouble), /*divide=*/true);
}

}  // namespace torchwan::c10d_backend
