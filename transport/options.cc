#include "transport/options.h"

#include <arpa/inet.h>
#include <ifaddrs.h>
#include <net/if.h>
#include <netinet/in.h>

#include <algorithm>
#include <cctype>
#include <cstdlib>
#include <memory>
#include <stdexcept>

#include "base/option_registry.h"
#include "relay/relay_client.h"
#include "transport/secure/encryption.h"

namespace torchwan::transport {

namespace {

long long parse_integer(const std::string& name, const std::string& text) {
  try {
    size_t used = 0;
    long long value = std::stoll(text, &used);
    if (used == text.size()) return value;
  } catch (const std::exception&) {
  }
  throw std::invalid_argument("option " + name + "='" + text + "' is not an integer");
}

}  // namespace

size_t parse_size(const std::string& name, const std::string& text) {
  long long value = parse_integer(name, text);
  if (value < 0) throw std::invalid_argument("option " + name + " must not be negative");
  return static_cast<size_t>(value);
}

const std::vector<std::string>& TransportOptions::field_names() {
  static const std::vector<std::string> names = base::option_names("transport");
  return names;
}

void TransportOptions::set(const std::string& name, const std::string& value) {
  if (name == "transport") {
    transport = value;
  } else if (name == "lanes") {
    lanes = static_cast<int>(parse_integer(name, value));
  } else if (name == "stripe_min_bytes") {
    stripe_min_bytes = parse_size(name, value);
  } else if (name == "chunk_bytes") {
    chunk_bytes = parse_size(name, value);
  } else if (name == "host") {
    host = value;
  } else if (name == "connect_timeout_ms") {
    connect_timeout = std::chrono::milliseconds(parse_integer(name, value));
  } else if (name == "peer_timeout_ms") {
    peer_timeout = std::chrono::milliseconds(parse_integer(name, value));
  } else if (name == "dial_timeout_ms") {
    dial_timeout = std::chrono::milliseconds(parse_integer(name, value));
  } else if (name == "socket_buffer_bytes") {
    socket_buffer_bytes = parse_size(name, value);
  } else if (name == "congestion") {
    congestion = value;
  } else if (name == "secret_file") {
    secret_file = value;
  } else if (name == "encryption") {
    encryption = value;
  } else if (name == "relay") {
    relay = value;
  } else if (name == "job_id") {
    job_id = value;
  } else if (name == "epoch") {
    epoch = static_cast<uint64_t>(parse_size(name, value));
  } else {
    throw std::invalid_argument("unknown transport option '" + name + "'");
  }
}

TransportOptions TransportOptions::from_env(TransportOptions options) {
  base::apply_env_options(
      "transport",
      [&options](const std::string& name, const std::string& value) { options.set(name, value); });
  options.validate();
  return options;
}

void TransportOptions::validate() const {
  if (transport != "ucx" && transport != "zmq") {
    throw std::invalid_argument("transport '" + transport + "' is unknown (use 'ucx' or 'zmq')");
  }
  if (lanes < 1 || lanes > 64) {
    throw std::invalid_argument("lanes=" + std::to_string(lanes) + " is out of range [1, 64]");
  }
  if (chunk_bytes < 4096) {
    throw std::invalid_argument("chunk_bytes=" + std::to_string(chunk_bytes) +
                                " is below the minimum of 4096");
  }
  if (connect_timeout.count() <= 0 || peer_timeout.count() <= 0 || dial_timeout.count() <= 0) {
    throw std::invalid_argument(
        "connect_timeout_ms, peer_timeout_ms and dial_timeout_ms must be positive");
  }
  // setsockopt takes an int; the kernel doubles the value it is given.
  if (socket_buffer_bytes > (size_t{1} << 30)) {
    throw std::invalid_argument("socket_buffer_bytes=" + std::to_string(socket_buffer_bytes) +
                                " is above the maximum of 1 GiB");
  }
  // Only the name is checked here: whether a secret_file accompanies it is for Transport::create
  // to decide, since options are assembled from several sources (environment, then explicit).
  effective_encryption(encryption, !relay.empty());
  if (!relay.empty()) relay::parse_relay_endpoints(relay);
  // The kernel's names are short lower-case identifiers (TCP_CA_NAME_MAX is 16 with the NUL).
  const bool plain_name = std::all_of(congestion.begin(), congestion.end(), [](char c) {
    return std::islower(static_cast<unsigned char>(c)) ||
           std::isdigit(static_cast<unsigned char>(c)) || c == '_';
  });
  if (congestion.size() > 15 || !plain_name) {
    throw std::invalid_argument("congestion='" + congestion +
                                "' is not a TCP congestion control name (e.g. bbr, cubic)");
  }
}

std::vector<std::string> interface_addresses() {
  std::vector<std::string> addresses;
  ifaddrs* raw = nullptr;
  if (getifaddrs(&raw) != 0) return addresses;
  std::unique_ptr<ifaddrs, decltype(&freeifaddrs)> list(raw, &freeifaddrs);
  for (ifaddrs* it = list.get(); it != nullptr; it = it->ifa_next) {
    if (it->ifa_addr == nullptr || it->ifa_addr->sa_family != AF_INET) continue;
    if ((it->ifa_flags & IFF_UP) == 0 || (it->ifa_flags & IFF_LOOPBACK) != 0) continue;
    char text[INET_ADDRSTRLEN] = {};
    const auto* address = reinterpret_cast<const sockaddr_in*>(it->ifa_addr);
    // An interface may carry one address under several labels.
    if (inet_ntop(AF_INET, &address->sin_addr, text, sizeof(text)) != nullptr &&
        std::find(addresses.begin(), addresses.end(), text) == addresses.end()) {
      addresses.emplace_back(text);
    }
  }
  return addresses;
}

std::string default_host_address() {
  const std::vector<std::string> addresses = interface_addresses();
  return addresses.empty() ? "127.0.0.1" : addresses.front();
}

}  // namespace torchwan::transport
