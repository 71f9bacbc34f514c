// The command lines of the project's standalone servers (torchwan-coordinator, torchwan-relay):
// `--flag value` pairs and bare switches, with the same help and the same errors in both.
#pragma once

#include <cstdint>
#include <functional>
#include <initializer_list>
#include <string>
#include <string_view>

namespace torchwan::base {

// Calls on_flag(flag, value) for each flag in argv, in order: `valued` flags with the argument
// after them, `switches` with an empty value. --help or -h prints `usage` and exits with 0. Throws
// std::invalid_argument for any other flag and for a valued flag that ends the command line.
void for_each_flag(
    int argc, char** argv, std::string_view usage, std::initializer_list<std::string_view> valued,
    std::initializer_list<std::string_view> switches,
    const std::function<void(const std::string& flag, const std::string& value)>& on_flag);

// The value of a numeric flag: a non-negative integer, else std::invalid_argument naming the flag
// and the text.
uint64_t parse_flag_number(const std::string& flag, const std::string& text);

}  // namespace torchwan::base
