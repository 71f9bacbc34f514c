// The property shared by the decoders of the records ranks publish in the bootstrap store, each
// of the form decode(bytes, why): an input is refused with a reason or accepted, and what is
// accepted encodes back to exactly the input bytes (no field skipped or misread, one encoding per
// record). A harness calls this with its record's decoder and encoder.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

template <typename Decode, typename Encode>
void check_record_round_trip(const uint8_t* data, size_t size, Decode decode, Encode encode) {
  const std::vector<uint8_t> bytes(data, data + size);
  std::string why;
  const auto record = decode(bytes, why);
  if (record.has_value() != why.empty()) __builtin_trap();  // a refusal always names its reason
  if (record && encode(*record) != bytes) __builtin_trap();
}
