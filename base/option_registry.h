// Every option of torchwan, declared once: its name, the layer that parses it, its default and
// what it does. The layers' option structs, the TORCHWAN_* environment variables, the Python
// `torchwan.Options` dataclass and the README's options table are all derived from this list,
// so an option cannot exist in one of them and be missing from another.
#pragma once

#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace torchwan::base {

struct OptionSpec {
  // Field name, as in torchwan.Options(name=...) and TORCHWAN_<NAME>.
  std::string_view name;
  // Who parses and validates it: "transport" (transport/options.h), "topology"
  // (csrc/group_topology.h), "engine" (csrc/).
  std::string_view layer;
  // The Python type of the field: "str" or "int".
  std::string_view type;
  // The default as the layer's parser reads it ("" for none); a test checks that parsing it
  // gives the layer's default-constructed value.
  std::string_view default_value;
  // The default as people read it ("1 MiB", "unset").
  std::string_view default_shown;
  // What it does, in Markdown (one paragraph; the README's table shows it as is).
  std::string_view doc;
};

// All options, in the order the README lists them.
const std::vector<OptionSpec>& option_registry();

// The option called `name`, or nullptr.
const OptionSpec* find_option(std::string_view name);

// The names of every option of `layer`, in registry order.
std::vector<std::string> option_names(std::string_view layer);

// "TORCHWAN_" + the name in upper case.
std::string option_env_variable(std::string_view name);

// The value of the option's environment variable when it is set and not empty.
std::optional<std::string> option_env_value(std::string_view name);

// Runs `body`; an std::invalid_argument it throws is rethrown with the option's environment
// variable in front ("TORCHWAN_LANES: ..."), so a bad variable names itself.
void with_env_context(std::string_view name, const std::function<void()>& body);

// Calls set(name, value) for every option of `layer` whose environment variable is set, in
// with_env_context.
void apply_env_options(std::string_view layer,
                       const std::function<void(const std::string&, const std::string&)>& set);

// The option's environment value parsed by `parse` (in with_env_context), or `fallback` when the
// variable is unset or empty.
template <typename T, typename Parse>
T parse_env_option(std::string_view name, T fallback, Parse parse) {
  const std::optional<std::string> value = option_env_value(name);
  if (!value) return fallback;
  T parsed = fallback;
  with_env_context(name, [&] { parsed = parse(*value); });
  return parsed;
}

}  // namespace torchwan::base
