// Settings of the membership coordinator; defaults suit a WAN job (seconds, not milliseconds).
#pragma once

#include <chrono>
#include <cstddef>
#include <optional>
#include <string>

#include "transport/secure/job_secret.h"

namespace torchwan::elastic {

struct CoordinatorOptions {
  std::string host = "0.0.0.0";
  int port = 29400;  // 0: let the kernel pick (see Coordinator::port())
  // Empty: the coordinator serves whichever job registers first and refuses every other job.
  std::string job_id;
  // A member not heard from for this long is declared failed.
  std::chrono::milliseconds heartbeat_timeout{10000};
  // A member reported lost by one peer is declared failed once it has also been silent this long
  // (1.5 default heartbeat intervals: a live member would have sent a heartbeat by then). Two
  // distinct reporters are enough without waiting.
  std::chrono::milliseconds peer_lost_silence{1500};
  // After a restart, how long to wait for the last epoch's members to re-register before settling
  // with those present (when they are a majority).
  std::chrono::milliseconds recovery_grace{10000};
  // The first epoch forms when this many members are registered.
  size_t min_members = 1;
  // Refuse an epoch that lost a majority of the previous epoch's (non-leaving) members; see
  // docs/elastic.md. Turning it off lets a two-member job survive one failure, at the price of
  // continuing when the coordinator is the one cut off.
  bool require_majority = true;
  // A standby beside the active coordinator (see docs/elastic.md, Coordinator failover): it never
  // forms a job from fresh registrations, only takes one over from members that carry its history
  // and bring a strict majority of their last epoch; with fewer it sends them on and stays idle.
  bool standby = false;
  // With a secret, only holders of the same secret can talk to the coordinator (ZeroMQ CURVE, see
  // docs/elastic.md). Without one, anyone who reaches the port can join or disturb the job.
  std::optional<security::JobSecret> secret;
};

}  // namespace torchwan::elastic
