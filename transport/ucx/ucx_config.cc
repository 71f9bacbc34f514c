#include "transport/ucx/ucx_config.h"

#include <arpa/inet.h>
#include <ifaddrs.h>
#include <netdb.h>
#include <netinet/in.h>
#include <sys/socket.h>

#include <algorithm>
#include <cstdlib>
#include <memory>

#include "base/log.h"

namespace torchwan::transport::ucx {

namespace {

// Resolves `host` to the IPv4 address it names, or nothing.
std::optional<in_addr> resolve_ipv4(const std::string& host) {
  in_addr address{};
  if (inet_pton(AF_INET, host.c_str(), &address) == 1) return address;
  addrinfo hints{};
  hints.ai_family = AF_INET;
  addrinfo* found = nullptr;
  if (getaddrinfo(host.c_str(), nullptr, &hints, &found) != 0 || found == nullptr) {
    return std::nullopt;
  }
  std::unique_ptr<addrinfo, decltype(&freeaddrinfo)> owned(found, &freeaddrinfo);
  return reinterpret_cast<const sockaddr_in*>(found->ai_addr)->sin_addr;
}

// UCX turns a time setting into its clock units and back, and truncates "2s" to 1 s on the
// socket; a fifth of a second more survives the round trip, whether it truncates or rounds.
std::string whole_seconds(long long value) { return std::to_string(value) + ".2s"; }

}  // namespace

std::optional<std::string> interface_for_host(const std::string& host) {
  const std::optional<in_addr> wanted = resolve_ipv4(host);
  if (!wanted) return std::nullopt;
  ifaddrs* list = nullptr;
  if (getifaddrs(&list) != 0) return std::nullopt;
  std::unique_ptr<ifaddrs, decltype(&freeifaddrs)> owned(list, &freeifaddrs);
  for (const ifaddrs* entry = list; entry != nullptr; entry = entry->ifa_next) {
    if (entry->ifa_addr == nullptr || entry->ifa_addr->sa_family != AF_INET) continue;
    const auto* address = reinterpret_cast<const sockaddr_in*>(entry->ifa_addr);
    if (address->sin_addr.s_addr == wanted->s_addr) return std::string(entry->ifa_name);
  }
  return std::nullopt;
}

std::vector<UcxSetting> choose_ucx_settings(const TransportOptions& options, const EnvLookup& env,
                                            const SocketTuning& tuning) {
  std::vector<UcxSetting> settings;
  // `env_name` is the variable a user would set; UCX 1.13 matches settings of its transports
  // (UCX_TCP_KEEPIDLE) by the field name without the transport's prefix (KEEPIDLE) and warns
  // "invalid configuration" about the prefixed form.
  auto choose = [&](const std::string& name, const std::string& value,
                    const std::string& env_name = "") {
    const std::string variable = "UCX_" + (env_name.empty() ? name : env_name);
    if (env(variable.c_str()) == nullptr) settings.push_back({name, value});
  };

  if (const char* tls = env("TORCHWAN_UCX_TLS")) {
    settings.push_back({"TLS", tls});
  } else {
    choose("TLS", "tcp");
  }

  const std::string host = options.host.empty() ? default_host_address() : options.host;
  if (std::optional<std::string> device = interface_for_host(host)) {
    choose("NET_DEVICES", *device);
  } else {
    layer_logger("transport")
        ->warn("ucx: no local interface holds address {}; UCX will use every interface", host);
  }

  // The kernel's TCP keepalive counts whole seconds and rejects 0. Probes start after half the
  // peer timeout of silence and the peer is declared dead after the rest of it.
  const long long timeout_s = std::max<long long>(
      2, std::chrono::duration_cast<std::chrono::seconds>(options.peer_timeout).count());
  const long long idle_s = std::max<long long>(1, timeout_s / 2);
  const long long interval_s = std::max<long long>(1, timeout_s / 10);
  const long long probes = std::max<long long>(1, (timeout_s - idle_s) / interval_s);
  choose("KEEPIDLE", whole_seconds(idle_s), "TCP_KEEPIDLE");
  choose("KEEPINTVL", whole_seconds(interval_s), "TCP_KEEPINTVL");
  choose("KEEPCNT", std::to_string(probes), "TCP_KEEPCNT");
  // UCP's own endpoint checks run on every progress round; check each endpoint a few times per
  // peer timeout.
  const long long keepalive_ms = std::max<long long>(100, options.peer_timeout.count() / 4);
  choose("KEEPALIVE_INTERVAL", std::to_string(keepalive_ms) + "ms");
  // A rendezvous send waits a round trip (request to send, ready to receive) before its data
  // moves; on a 100 ms link that round trip costs as much as 12 MiB of a 1 Gbit/s stream, per
  // message. Messages are at most chunk_bytes, so sending them all eagerly streams every chunk at
  // once; the engine posts its receives ahead, so they rarely wait unexpected in UCX's buffers.
  choose("RNDV_THRESH", "inf");
  // In bytes; UCX hands them to setsockopt on each of its TCP connections.
  if (tuning.send_buffer > 0) choose("SNDBUF", std::to_string(tuning.send_buffer), "TCP_SNDBUF");
  if (tuning.receive_buffer > 0) {
    choose("RCVBUF", std::to_string(tuning.receive_buffer), "TCP_RCVBUF");
  }
  return settings;
}

ConfigPtr read_ucx_config(const TransportOptions& options) {
  ucp_config_t* raw = nullptr;
  check_ucs(ucp_config_read(nullptr, nullptr, &raw), "ucp_config_read");
  ConfigPtr config(raw);
  auto env = [](const char* name) -> const char* {
    const char* value = std::getenv(name);
    return (value != nullptr && *value != '\0') ? value : nullptr;
  };
  auto logger = layer_logger("transport");
  const KernelNetLimits limits = read_kernel_net_limits();
  SocketTuning tuning = plan_socket_tuning(options, limits);
  logger->debug("ucx: data connections: {}", describe_socket_tuning(options, limits, tuning));
  tuning.congestion.clear();  // set by the engine on the connections, not through UCX
  for (const UcxSetting& setting : choose_ucx_settings(options, env, tuning)) {
    check_ucs(ucp_config_modify(config.get(), setting.name.c_str(), setting.value.c_str()),
              "setting UCX_" + setting.name + "=" + setting.value);
    logger->debug("ucx: UCX_{}={}", setting.name, setting.value);
  }
  return config;
}

}  // namespace torchwan::transport::ucx
