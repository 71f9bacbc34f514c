// The CallSignature each collective hands the engine, which compares it across ranks so that
// ranks disagreeing about a call (collective, dtype, size, op, root) all fail with an error naming
// both sides instead of hanging or exchanging garbage.
#pragma once

#include <ATen/ATen.h>

#include <cstdint>
#include <optional>
#include <torch/csrc/distributed/c10d/Types.hpp>
#include <torch/csrc/distributed/c10d/Work.hpp>

#include "csrc/collectives.h"

namespace torchwan::c10d_backend {

struct SignatureFields {
  c10d::OpType type;
  const char* name;  // as users know it, e.g. "all_reduce"
  at::ScalarType dtype = at::kByte;
  uint64_t count = 0;  // elements this rank contributes (0 where ranks legitimately differ)
  std::optional<c10d::ReduceOp::RedOpType> op;
  int root = -1;
  bool carries_data = true;  // false for barriers: the description shows no dtype or count
};

engine::CallSignature make_signature(const SignatureFields& fields);

const char* reduce_op_label(c10d::ReduceOp::RedOpType op);

}  // namespace torchwan::c10d_backend
