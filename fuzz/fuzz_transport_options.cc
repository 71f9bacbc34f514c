// Transport settings text (transport/options.h): TORCHWAN_* environment values and the options
// strings users pass are parsed by TransportOptions::set, then range-checked by validate().
#include <fuzzer/FuzzedDataProvider.h>

#include <cstddef>
#include <cstdint>
#include <stdexcept>
#include <string>

#include "transport/options.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace torchwan::transport;
  FuzzedDataProvider input(data, size);
  const auto& names = TransportOptions::field_names();
  TransportOptions options;
  try {
    while (input.remaining_bytes() > 0) {
      const std::string& name = names[input.ConsumeIntegralInRange<size_t>(0, names.size() - 1)];
      options.set(name, input.ConsumeRandomLengthString(32));
    }
    options.validate();
  } catch (const std::invalid_argument&) {
  }
  return 0;
}
