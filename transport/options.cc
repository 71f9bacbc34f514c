#include "transport/options.h"

#include <arpa/inet.h>
#include <ifaddrs.h>
#include <net/if.h>
#include <netinet/in.h>

#include <cstdlib>
#include <memory>
#include <stdexcept>

namespace torchwan::transport {

namespace {

const char* env(const char* name) {
  const char* value = std::getenv(name);
  return (value != nullptr && *value != '\0') ? value : nullptr;
}

long long parse_integer(const char* name, const char* text) {
  try {
    size_t used = 0;
    long long value = std::stoll(text, &used);
    if (used != std::string(text).size()) throw std::invalid_argument("trailing characters");
    return value;
  } catch (const std::exception&) {
    throw std::invalid_argument(std::string(name) + "='" + text + "' is not an integer");
  }
}

}  // namespace

TransportOptions TransportOptions::from_env(TransportOptions options) {
  if (const char* v = env("TORCHWAN_TRANSPORT")) options.kind = v;
  if (const char* v = env("TORCHWAN_LANES")) {
    options.lanes = static_cast<int>(parse_integer("TORCHWAN_LANES", v));
  }
  if (const char* v = env("TORCHWAN_STRIPE_MIN_BYTES")) {
    options.stripe_min_bytes = static_cast<size_t>(parse_integer("TORCHWAN_STRIPE_MIN_BYTES", v));
  }
  if (const char* v = env("TORCHWAN_CHUNK_BYTES")) {
    options.chunk_bytes = static_cast<size_t>(parse_integer("TORCHWAN_CHUNK_BYTES", v));
  }
  if (const char* v = env("TORCHWAN_HOST")) options.host = v;
  if (const char* v = env("TORCHWAN_CONNECT_TIMEOUT_MS")) {
    options.connect_timeout =
        std::chrono::milliseconds(parse_integer("TORCHWAN_CONNECT_TIMEOUT_MS", v));
  }
  if (const char* v = env("TORCHWAN_PEER_TIMEOUT_MS")) {
    options.peer_timeout = std::chrono::milliseconds(parse_integer("TORCHWAN_PEER_TIMEOUT_MS", v));
  }
  options.validate();
  return options;
}

void TransportOptions::validate() const {
  if (kind != "ucx" && kind != "zmq") {
    throw std::invalid_argument("transport kind '" + kind + "' is unknown (use 'ucx' or 'zmq')");
  }
  if (lanes < 1 || lanes > 64) {
    throw std::invalid_argument("lanes=" + std::to_string(lanes) + " is out of range [1, 64]");
  }
  if (chunk_bytes < 4096) {
    throw std::invalid_argument("chunk_bytes=" + std::to_string(chunk_bytes) +
                                " is below the minimum of 4096");
  }
  if (connect_timeout.count() <= 0 || peer_timeout.count() <= 0) {
    throw std::invalid_argument("connect_timeout and peer_timeout must be positive");
  }
}

std::string default_host_address() {
  ifaddrs* raw = nullptr;
  if (getifaddrs(&raw) != 0) return "127.0.0.1";
  std::unique_ptr<ifaddrs, decltype(&freeifaddrs)> list(raw, &freeifaddrs);
  for (ifaddrs* it = list.get(); it != nullptr; it = it->ifa_next) {
    if (it->ifa_addr == nullptr || it->ifa_addr->sa_family != AF_INET) continue;
    if ((it->ifa_flags & IFF_UP) == 0 || (it->ifa_flags & IFF_LOOPBACK) != 0) continue;
    char text[INET_ADDRSTRLEN] = {};
    const auto* address = reinterpret_cast<const sockaddr_in*>(it->ifa_addr);
    if (inet_ntop(AF_INET, &address->sin_addr, text, sizeof(text)) != nullptr) return text;
  }
  return "127.0.0.1";
}

}  // namespace torchwan::transport
