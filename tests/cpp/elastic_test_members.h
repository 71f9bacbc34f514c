// Members of the elastic tests that run them as threads of the test process.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "elastic/member.h"

namespace torchwan::elastic::testing {

// One member per name, each started with options_of(name).
template <typename OptionsOf>
std::vector<std::unique_ptr<Member>> start_members(const std::vector<std::string>& names,
                                                   const OptionsOf& options_of) {
  std::vector<std::unique_ptr<Member>> members;
  for (const auto& name : names) members.push_back(std::make_unique<Member>(options_of(name)));
  return members;
}

// The members' names, in the order of the list.
inline std::vector<std::string> names_of(const std::vector<MemberInfo>& members) {
  std::vector<std::string> names;
  for (const auto& member : members) names.push_back(member.name);
  return names;
}

}  // namespace torchwan::elastic::testing
