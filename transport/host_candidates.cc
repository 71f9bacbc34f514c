#include "transport/host_candidates.h"

#include <arpa/inet.h>
#include <ifaddrs.h>
#include <net/if.h>
#include <netinet/in.h>

#include <algorithm>
#include <memory>

namespace torchwan::transport {

std::vector<std::string> candidate_hosts(const std::string& configured_host) {
  if (!configured_host.empty()) return {configured_host};
  std::vector<std::string> hosts;
  ifaddrs* raw = nullptr;
  if (getifaddrs(&raw) == 0) {
    std::unique_ptr<ifaddrs, decltype(&freeifaddrs)> list(raw, &freeifaddrs);
    for (ifaddrs* it = list.get(); it != nullptr; it = it->ifa_next) {
      if (it->ifa_addr == nullptr || it->ifa_addr->sa_family != AF_INET) continue;
      if ((it->ifa_flags & IFF_UP) == 0 || (it->ifa_flags & IFF_LOOPBACK) != 0) continue;
      char text[INET_ADDRSTRLEN] = {};
      const auto* address = reinterpret_cast<const sockaddr_in*>(it->ifa_addr);
      if (inet_ntop(AF_INET, &address->sin_addr, text, sizeof(text)) == nullptr) continue;
      // An interface may carry one address under several labels.
      if (std::find(hosts.begin(), hosts.end(), text) == hosts.end()) hosts.emplace_back(text);
    }
  }
  if (hosts.empty()) hosts.emplace_back("127.0.0.1");
  return hosts;
}

}  // namespace torchwan::transport
