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
  TORCH_CHECK_VALUE(engine::reduce_supported(dtype, result), "torchwan ", op_name,
                    ": reduce op ", engine::reduce_op_name(result), " is not defined for dtype ",
                    type);
  return result;
}

const at::Tensor& single_dense_tensor(const std::vector<at::Tensor>& tensors,
                                      const char* op_name) {
  TORCH_CHECK_VALUE(tensors.size() == 1, "torchwan ", op_name,
                    ": expects exactly one tensor per call, got ", tensors.size());
  check_dense_cpu(tensors[0], op_name);
  return tensors[0];
}

void check_dense_cpu(const at::Tensor& tensor, const char* op_name) {
  TORCH_CHECK_VALUE(tensor.layout() == at::kStrided, "torchwan ", op_name,
                    ": only dense tensors are supported, got layout ", tensor.layout());
  TORCH_CHECK_VALUE(tensor.device().is_cpu(), "torchwan ", op_name,
                    ": only CPU tensors are supported so far, got ", tensor.device());
  TORCH_CHECK_VALUE(tensor.is_contiguous(), "torchwan ", op_name,
                    ": the tensor must be contiguous (call .contiguous() first)");
}

}  // namespace torchwan::c10d_backend
