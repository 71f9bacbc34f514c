// Data-plane auth record (transport/secure/data_auth.h): what every rank reads from the bootstrap
// store about each peer's secret fingerprint, job, epoch, encryption setting and nonce before it
// connects.
#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "transport/secure/data_auth.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace torchwan::transport;
  std::string why;
  const auto record = decode_auth_record(std::vector<uint8_t>(data, data + size), why);
  if (record.has_value() != why.empty()) __builtin_trap();  // a refusal always names its reason
  // An accepted record survives re-encoding unchanged (bytes a record ignores may differ).
  if (record) {
    const auto again = decode_auth_record(encode_auth_record(*record), why);
    if (!again || again->has_secret != record->has_secret ||
        again->fingerprint != record->fingerprint || again->job_hash != record->job_hash ||
        again->epoch != record->epoch || again->nonce != record->nonce ||
        again->encryption != record->encryption || again->has_aes != record->has_aes) {
      __builtin_trap();
    }
  }
  return 0;
}
