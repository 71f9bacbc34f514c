// The text of the exception a call throws, for tests of what an error says.
#pragma once

#include <exception>
#include <string>

namespace torchwan::testing {

// What the `Error` that `call` throws says; empty when `call` returns (any other exception
// propagates).
template <typename Error = std::exception, typename Call>
std::string thrown_message(Call&& call) {
  try {
    call();
  } catch (const Error& error) {
    return error.what();
  }
  return "";
}

}  // namespace torchwan::testing
