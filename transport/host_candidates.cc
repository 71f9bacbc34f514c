#include "transport/host_candidates.h"

#include "transport/options.h"

namespace torchwan::transport {

std::vector<std::string> candidate_hosts(const std::string& configured_host) {
  if (!configured_host.empty()) return {configured_host};
  std::vector<std::string> hosts = interface_addresses();
  if (hosts.empty()) hosts.emplace_back("127.0.0.1");
  return hosts;
}

}  // namespace torchwan::transport
