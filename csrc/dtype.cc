#include "csrc/dtype.h"

#include <iterator>
#include <stdexcept>
#include <string>

#include "base/enum_names.h"

namespace torchwan::engine {
namespace {

// Every DataType's properties, in declaration order.
struct DataTypeInfo {
  const char* name;
  size_t size;
  bool floating;  // real or complex floating point, float8 included
  bool complex;
};

constexpr DataTypeInfo kDataTypes[] = {
    {"bool", 1, false, false},         {"uint8", 1, false, false},
    {"int8", 1, false, false},         {"int16", 2, false, false},
    {"int32", 4, false, false},        {"int64", 8, false, false},
    {"float16", 2, true, false},       {"bfloat16", 2, true, false},
    {"float32", 4, true, false},       {"float64", 8, true, false},
    {"complex64", 8, true, true},      {"complex128", 16, true, true},
    {"float8_e4m3fn", 1, true, false}, {"float8_e5m2", 1, true, false},
};
static_assert(std::size(kDataTypes) == static_cast<size_t>(DataType::kFloat8E5M2) + 1);

constexpr const char* kReduceOpNames[] = {"SUM", "PRODUCT", "MIN", "MAX", "BAND", "BOR", "BXOR"};
static_assert(std::size(kReduceOpNames) == static_cast<size_t>(ReduceOp::kBxor) + 1);

const DataTypeInfo& info(DataType dtype) {
  const auto index = static_cast<size_t>(dtype);
  if (index >= std::size(kDataTypes)) {
    throw std::invalid_argument("unknown DataType " + std::to_string(index));
  }
  return kDataTypes[index];
}

}  // namespace

size_t element_size(DataType dtype) { return info(dtype).size; }

const char* dtype_name(DataType dtype) {
  const auto index = static_cast<size_t>(dtype);
  return index < std::size(kDataTypes) ? kDataTypes[index].name : "unknown";
}

const char* reduce_op_name(ReduceOp op) { return base::enum_name(op, kReduceOpNames); }

bool is_floating(DataType dtype) { return info(dtype).floating; }

bool reduce_supported(DataType dtype, ReduceOp op) {
  const DataTypeInfo& type = info(dtype);  // throws for an unknown dtype
  switch (op) {
    case ReduceOp::kSum:
    case ReduceOp::kProduct:
      return true;
    case ReduceOp::kMin:
    case ReduceOp::kMax:
      return !type.complex;  // complex numbers have no order
    case ReduceOp::kBand:
    case ReduceOp::kBor:
    case ReduceOp::kBxor:
      return !type.floating;  // integers and bool
  }
  return false;
}

}  // namespace torchwan::engine
