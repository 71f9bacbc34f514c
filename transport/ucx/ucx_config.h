// The UCX settings torchwan chooses for a transport, applied to one ucp_config_t (never through
// setenv, so several transports in one process can differ). A UCX_* variable the user set in the
// environment always wins over our choice.
#pragma once

#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "transport/options.h"
#include "transport/socket_tuning.h"
#include "transport/ucx/ucx_handles.h"

namespace torchwan::transport::ucx {

struct UcxSetting {
  std::string name;  // without the UCX_ prefix, as ucp_config_modify expects it
  std::string value;
};

// Looks up an environment variable; returns nullptr when unset. Injected so tests need no setenv.
using EnvLookup = std::function<const char*(const char*)>;

// The settings for `options`:
//  - TLS=tcp, because shared memory would bypass emulated WAN links between network namespaces of
//    one host (TORCHWAN_UCX_TLS opts into others);
//  - NET_DEVICES=the interface holding options.host, because UCX otherwise adds a lane over every
//    other interface too (eth0 even for 127.0.0.1);
//  - keepalive timings so that a peer whose host vanished is detected within options.peer_timeout;
//  - eager sends of every size, for long links (see the .cc);
//  - TCP_SNDBUF/RCVBUF from `tuning` where it sets a size. UCX has no setting for the
//    congestion control; the engine sets it on the connections once they exist
//    (ucx_socket_census.h).
std::vector<UcxSetting> choose_ucx_settings(const TransportOptions& options, const EnvLookup& env,
                                            const SocketTuning& tuning = {});

// Reads UCX's configuration (environment included) and applies choose_ucx_settings on top.
ConfigPtr read_ucx_config(const TransportOptions& options);

// The name of the local interface that holds IPv4 address `host` (a dotted quad or a resolvable
// name), or nothing when no interface has it.
std::optional<std::string> interface_for_host(const std::string& host);

}  // namespace torchwan::transport::ucx
