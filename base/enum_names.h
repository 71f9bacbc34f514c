// Names of enum values from one list per enum, in declaration order: what would otherwise be a
// switch with one `case X: return "x";` per value, written again for every enum. A value outside
// the list (a corrupted or newer value) gets the fallback; parsing is the same list read backwards.
#pragma once

#include <cstddef>
#include <optional>
#include <string_view>

namespace torchwan::base {

// `names[i]` names the value `first + i`; `std::size(names)` must cover the enum (callers
// static_assert it against their last value).
template <typename Enum, size_t N>
constexpr const char* enum_name(Enum value, const char* const (&names)[N],
                                const char* fallback = "unknown", Enum first = Enum{}) {
  const long long index = static_cast<long long>(value) - static_cast<long long>(first);
  return index >= 0 && index < static_cast<long long>(N) ? names[index] : fallback;
}

template <typename Enum, size_t N>
constexpr std::optional<Enum> enum_value(std::string_view name, const char* const (&names)[N],
                                         Enum first = Enum{}) {
  for (size_t i = 0; i < N; ++i) {
    if (name == names[i]) return static_cast<Enum>(static_cast<long long>(first) + i);
  }
  return std::nullopt;
}

}  // namespace torchwan::base
