#include "base/server_flags.h"

#include <algorithm>
#include <cstdlib>
#include <iostream>
#include <stdexcept>

namespace torchwan::base {

void for_each_flag(
    int argc, char** argv, std::string_view usage, std::initializer_list<std::string_view> valued,
    std::initializer_list<std::string_view> switches,
    const std::function<void(const std::string& flag, const std::string& value)>& on_flag) {
  const auto names = [](std::initializer_list<std::string_view> list, const std::string& flag) {
    return std::find(list.begin(), list.end(), flag) != list.end();
  };
  for (int i = 1; i < argc; ++i) {
    const std::string flag = argv[i];
    if (flag == "--help" || flag == "-h") {
      std::cout << usage;
      std::exit(0);
    }
    if (names(switches, flag)) {
      on_flag(flag, "");
      continue;
    }
    if (!names(valued, flag)) throw std::invalid_argument("unknown option " + flag);
    if (i + 1 >= argc) throw std::invalid_argument(flag + " needs a value");
    on_flag(flag, argv[++i]);
  }
}

uint64_t parse_flag_number(const std::string& flag, const std::string& text) {
  size_t used = 0;
  long long value = -1;
  try {
    value = std::stoll(text, &used);
  } catch (const std::exception&) {
    used = 0;
  }
  if (used != text.size() || value < 0) {
    throw std::invalid_argument(flag + " expects a non-negative integer, got '" + text + "'");
  }
  return static_cast<uint64_t>(value);
}

}  // namespace torchwan::base
