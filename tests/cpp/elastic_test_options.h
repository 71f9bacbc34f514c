// Coordinator and member settings the elastic tests start from: one job on loopback, and timeouts
// short enough that a test sees a failure within about a second. A test changes what its
// scenario needs on the copy it gets.
#pragma once

#include <chrono>
#include <cstddef>
#include <string>

#include "elastic/coordinator_options.h"
#include "elastic/member.h"

namespace torchwan::elastic::testing {

inline CoordinatorOptions fast_coordinator_options(size_t min_members) {
  using namespace std::chrono_literals;
  CoordinatorOptions options;
  options.host = "127.0.0.1";
  options.port = 0;
  options.job_id = "job";
  options.heartbeat_timeout = 1000ms;
  options.peer_lost_silence = 300ms;
  options.recovery_grace = 1500ms;
  options.min_members = min_members;
  return options;
}

// `coordinators`: one endpoint or a comma-separated list.
inline MemberOptions fast_member_options(const std::string& coordinators, const std::string& name) {
  using namespace std::chrono_literals;
  MemberOptions options;
  options.coordinator = coordinators;
  options.job_id = "job";
  options.name = name;
  options.address = name + ".example:7000";
  options.region = "region-" + name;
  options.capabilities = {"cpu"};
  options.heartbeat_interval = 100ms;
  options.coordinator_timeout = 1000ms;
  return options;
}

}  // namespace torchwan::elastic::testing
