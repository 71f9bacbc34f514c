#include "c10d_backend/signature.h"

#include <c10/core/ScalarType.h>

#include <string>

namespace torchwan::c10d_backend {

const char* reduce_op_label(c10d::ReduceOp::RedOpType op) {
  switch (op) {
    case c10d::ReduceOp::SUM:
      return "SUM";
    case c10d::ReduceOp::AVG:
      return "AVG";
    case c10d::ReduceOp::PRODUCT:
      return "PRODUCT";
    case c10d::ReduceOp::MIN:
      return "MIN";
    case c10d::ReduceOp::MAX:
      return "MAX";
    case c10d::ReduceOp::BAND:
      return "BAND";
    case c10d::ReduceOp::BOR:
      return "BOR";
    case c10d::ReduceOp::BXOR:
      return "BXOR";
    case c10d::ReduceOp::PREMUL_SUM:
      return "PREMUL_SUM";
    default:
      return "UNUSED";
  }
}

engine::CallSignature make_signature(const SignatureFields& fields) {
  engine::CallSignature signature;
  signature.kind = static_cast<uint8_t>(fields.type);
  signature.dtype = static_cast<uint8_t>(fields.dtype);
  // 0 means "no op", so ops are shifted by one.
  signature.op = fields.op ? static_cast<uint8_t>(static_cast<int>(*fields.op) + 1) : 0;
  signature.root = fields.root;
  signature.count = fields.count;
  std::string text = std::string(fields.name) + "(";
  if (fields.carries_data) {
    text += std::string(c10::toString(fields.dtype)) + " x " + std::to_string(fields.count);
  }
  if (fields.op) text += std::string(", ") + reduce_op_label(*fields.op);
  if (fields.root >= 0) text += ", root " + std::to_string(fields.root);
  signature.describe = text + ")";
  return signature;
}

}  // namespace torchwan::c10d_backend
