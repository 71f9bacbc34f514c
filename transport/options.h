// Settings of a transport. Every field is declared in base/option_registry.cc (name, default,
// documentation) and can be set from a TORCHWAN_* environment variable of the same name so an
// unmodified training script can be tuned from the shell.
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

namespace torchwan::transport {

struct TransportOptions {
  // "ucx" or "zmq"                                    TORCHWAN_TRANSPORT
  std::string transport = "ucx";
  // Parallel connections per peer; large messages are striped over them.   TORCHWAN_LANES
  int lanes = 4;
  // Messages smaller than this travel whole on one lane.       TORCHWAN_STRIPE_MIN_BYTES
  size_t stripe_min_bytes = size_t{1} << 20;
  // Largest single wire message; bigger stripes are cut into chunks.   TORCHWAN_CHUNK_BYTES
  size_t chunk_bytes = size_t{4} << 20;
  // Address other ranks reach this one at; empty picks one automatically.   TORCHWAN_HOST
  std::string host;
  // How long connection setup may take before it fails naming the missing rank.
  //                                                   TORCHWAN_CONNECT_TIMEOUT_MS
  std::chrono::milliseconds connect_timeout{120000};
  // Silence after which a peer counts as lost.         TORCHWAN_PEER_TIMEOUT_MS
  std::chrono::milliseconds peer_timeout{10000};
  // A dialed peer that answers within this is reached directly; else it is asked to dial back.
  std::chrono::milliseconds dial_timeout{5000};
  // Kernel send and receive buffer of each data connection. One TCP stream moves at most one
  // buffer per round trip, so this should cover the bandwidth-delay product (64 MiB: 5 Gbit/s at
  // 100 ms). An explicit size turns the kernel's autotuning off and net.core.wmem_max/rmem_max
  // cap it, so it is applied only where the cap admits the whole value and it exceeds what
  // autotuning may reach (net.ipv4.tcp_wmem/tcp_rmem max); otherwise autotuning stays in charge
  // (raise net.core.[rw]mem_max as root to let it apply). 0: always leave it to the kernel.
  //                                                   TORCHWAN_SOCKET_BUFFER_BYTES
  size_t socket_buffer_bytes = size_t{64} << 20;
  // TCP congestion control of data connections whose socket the transport can reach ("bbr"
  // keeps a lossy long link full where cubic collapses). Used only when the kernel lists it in
  // /proc/sys/net/ipv4/tcp_available_congestion_control; else, or when empty, the system
  // default applies.                                   TORCHWAN_CONGESTION
  std::string congestion = "bbr";
  // File holding the job secret (see transport/secure/job_secret.h). When set, every data
  // connection proves that its sender holds the secret, for this job and epoch, before anything it
  // sends is accepted; when empty the data plane is unauthenticated.     TORCHWAN_SECRET_FILE
  std::string secret_file;
  // Authenticated encryption of every data message (transport/secure/encrypted_transport.h):
  // "none", "aes-256-gcm", "chacha20-poly1305", "on" (AES-256-GCM when every rank's CPU has AES
  // instructions, else ChaCha20-Poly1305), or "auto": "on" when `relay` is set, else "none".
  // Needs secret_file unless it is "none"; every rank must agree.
  //                                                   TORCHWAN_ENCRYPTION
  std::string encryption = "auto";
  // Relays ("host:port[,host:port]") for pairs of ranks that cannot connect either way: both
  // dial out to the first relay that admits them, which forwards their lanes (ZeroMQ link only;
  // docs/reachability.md).                          TORCHWAN_RELAY
  std::string relay;
  // Names the job; connections of another job are refused, and a rank of another job is named
  // at connection setup. Empty is a job id like any other.         TORCHWAN_JOB_ID
  std::string job_id;
  // Membership epoch, set by the elastic layer: connections and frames of another epoch are
  // refused, so traffic recorded in one epoch cannot be replayed into the next.   TORCHWAN_EPOCH
  uint64_t epoch = 0;

  // Sets the field called `name` (e.g. "lanes") from text. Throws std::invalid_argument naming
  // the field when the name is unknown or the value does not parse.
  void set(const std::string& name, const std::string& value);
  // The names `set` accepts: the registry's "transport" options; each also reads from
  // TORCHWAN_<NAME in upper case>.
  static const std::vector<std::string>& field_names();
  // Returns `defaults` with every TORCHWAN_* variable that is set applied on top.
  static TransportOptions from_env(TransportOptions defaults);
  static TransportOptions from_env() { return from_env(TransportOptions{}); }
  // Throws std::invalid_argument naming the field when a value is out of range.
  void validate() const;

  bool operator==(const TransportOptions&) const = default;
};

// A byte count or other non-negative integer option in decimal; throws std::invalid_argument
// naming the option `name` when `text` is not one. Shared by every TORCHWAN_* size setting.
size_t parse_size(const std::string& name, const std::string& text);

// The address this host publishes when TransportOptions::host is empty: the first non-loopback
// IPv4 address of an interface that is up, else 127.0.0.1.
std::string default_host_address();
// Every IPv4 address of an interface that is up, loopback excluded: where peers may reach this
// process (error messages name them when none worked).
std::vector<std::string> interface_addresses();

}  // namespace torchwan::transport
