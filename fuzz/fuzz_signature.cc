// Collective call signatures (csrc/signature.h): the record each rank sends its peers before a
// collective, decoded and compared with this rank's own call as Exchange does.
#include <cstddef>
#include <cstdint>
#include <string>

#include "csrc/signature.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace torchwan::engine;
  std::string why;
  const auto theirs = decode_signature(data, size, why);
  if (theirs.has_value() != why.empty()) __builtin_trap();  // a refusal always names its reason
  if (!theirs) return 0;
  WireSignature mine;
  mine.kind = 1;
  mine.count = 1000;
  mine.describe = "allreduce(float32 x 1000, SUM)";
  signature_mismatch(mine, 0, *theirs, 1);
  signature_mismatch(*theirs, 1, *theirs, 2);
  // The text is shown in error messages: it must be printable ASCII only.
  for (const char c : theirs->describe) {
    if (c < 0x20 || c > 0x7e) __builtin_trap();
  }
  return 0;
}
