// The addresses a rank offers its peers to dial: with TORCHWAN_HOST set, that host alone; else
// every non-loopback IPv4 address of an interface that is up (a host with a public and a private
// interface, or several private networks, lets each peer find the one it can reach), else
// loopback. IPv6 is used when TORCHWAN_HOST names an IPv6 address.
#pragma once

#include <string>
#include <vector>

namespace torchwan::transport {

std::vector<std::string> candidate_hosts(const std::string& configured_host);

}  // namespace torchwan::transport
