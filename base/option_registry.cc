#include "base/option_registry.h"

#include <cctype>
#include <cstdlib>
#include <stdexcept>

namespace torchwan::base {

const std::vector<OptionSpec>& option_registry() {
  static const std::vector<OptionSpec> options = {
      {"transport", "transport", "str", "ucx", "`ucx`", "data plane: `ucx` or `zmq`"},
      {"lanes", "transport", "int", "4", "4",
       "parallel TCP connections per peer; large messages are striped over them to fill long fat "
       "links"},
      {"stripe_min_bytes", "transport", "int", "1048576", "1 MiB",
       "smaller messages travel whole on one lane"},
      {"chunk_bytes", "transport", "int", "4194304", "4 MiB", "largest single wire message"},
      {"host", "transport", "str", "", "first non-loopback IPv4",
       "address peers reach this rank at"},
      {"connect_timeout_ms", "transport", "int", "120000", "120000",
       "limit on connecting the group"},
      {"peer_timeout_ms", "transport", "int", "10000", "10000",
       "silence after which a peer counts as lost"},
      {"dial_timeout_ms", "transport", "int", "5000", "5000",
       "how long a rank waits for a peer it dialed to answer before asking that peer to dial back "
       "(the reverse rung, for a peer behind a NAT or firewall; docs/reachability.md)"},
      {"socket_buffer_bytes", "transport", "int", "67108864", "64 MiB",
       "kernel buffer of each data connection; one TCP stream moves at most one buffer per round "
       "trip, so this should cover the bandwidth-delay product. Applied where "
       "`net.core.wmem_max`/`rmem_max` admit it, else the kernel's autotuning stays in charge; 0 "
       "always leaves it to the kernel"},
      {"congestion", "transport", "str", "bbr", "`bbr`",
       "TCP congestion control of the data connections, on both transports, when the kernel "
       "offers it: BBR keeps a lossy long link full where cubic collapses. BBR paces every burst "
       "of packets, which costs CPU: on a clean link with a CPU-bound host, `cubic` can be "
       "faster. Empty leaves the system default"},
      {"region", "topology", "str", "", "unset",
       "this rank's region label (data centre, site); set on every rank or on none. Allreduce "
       "then reduces inside each region and crosses the links between regions with as little "
       "data as possible"},
      {"topology", "topology", "str", "auto", "`auto`",
       "how regions are found: `auto` (the labels when set, else, with more than 2 ranks, "
       "clustered from round-trip times measured when the group is created), `regions` (labels "
       "required on every rank) or `flat` (one region, no hierarchy). The result is on the "
       "backend: `dist.group.WORLD._get_backend(torch.device(\"cpu\")).regions`"},
      {"host_id", "topology", "str", "", "hostname, boot id and network namespace",
       "which machine this rank runs on. Ranks with equal ids allreduce large buffers through "
       "shared memory instead of sockets: all of a group's ranks on one host entirely, hosts of "
       "equal size inside each host, each local rank carrying a shard between hosts "
       "(docs/architecture.md); where memory cannot be shared, that host uses sockets. Set it to "
       "tell apart ranks that the default cannot, or to keep ranks on separate paths"},
      {"local_backend", "topology", "str", "auto", "`auto`",
       "what carries the steps inside a host (the host tier: reduce-scatter and allgather "
       "inside each host, the step between hosts over the WAN): `auto`, `gloo` (the shared "
       "memory tier; device tensors are staged to the host), `none` (no host tier: every rank "
       "counts as a host of its own) or `nccl` (an NCCL group per host for CUDA tensors, made on "
       "the first CUDA allreduce that takes the host tier; CPU tensors keep the shared memory "
       "tier; an error when torch has no NCCL or two of a host's ranks share a GPU). `auto` is "
       "`nccl` for CUDA tensors where every rank of the host has NCCL and a GPU of its own, "
       "`gloo` otherwise. Set the same on every rank"},
      {"compression", "engine", "str", "none", "`none`",
       "codec for floating-point (fp16, bf16, fp32, fp64) SUM/AVG allreduces of at least 64 KiB: "
       "`none`, `fp16`, `bf16` (2x fewer bytes), `int8` or `fp8` (3.9x). Lossy: each element is "
       "quantised at most twice (encode, all-to-all, fp32 sum, encode, allgather), the result is "
       "bit-identical on every rank; integers, other ops and smaller tensors stay exact. Set the "
       "same on every rank. For 1-bit and top-k (which need error feedback) use `torchwan.hooks` "
       "(docs/compression.md)"},
      {"scratch_cache_bytes", "engine", "int", "268435456", "256 MiB",
       "temporaries of 4 MiB or more (ring staging, compressed payloads) that a group keeps "
       "between calls instead of allocating, page-faulting and freeing them on every call; 0 "
       "keeps none"},
      {"algorithm", "engine", "str", "", "automatic",
       "forces collectives' algorithms, for tests and benchmarks: `collective:algorithm` pairs, "
       "comma-separated, e.g. `allreduce:ring,broadcast:chain`. Allreduce: `hierarchical`, "
       "`shared_memory`, `hosts`, `direct`, `two_step`, `recursive_doubling`, `ring`; broadcast: "
       "`direct`, "
       "`binomial_tree`, `chain`; "
       "reduce: "
       "`binomial_tree`, `chain`; allgather and reduce_scatter: `direct`, `ring`; barrier: "
       "`direct`, `dissemination` (csrc/algorithm_table.cc lists each with the rule that picks it "
       "otherwise). Set the same on every rank"},
      {"secret_file", "transport", "str", "", "unset",
       "the job secret (`python -m torchwan.secret FILE` writes one, mode 0600). With it, every "
       "data connection proves it holds the secret for this job and epoch before anything it "
       "sends is accepted, and members may join a coordinator started with `--secret-file` "
       "(ZeroMQ CURVE). Without it the job is unauthenticated "
       "([docs/security.md](docs/security.md))"},
      {"job_id", "transport", "str", "", "empty",
       "names the job; connections of another job are refused and named"},
      {"encryption", "transport", "str", "auto", "`auto`",
       "authenticated encryption of every data message, on both transports: `none`, "
       "`aes-256-gcm`, `chacha20-poly1305`, `on` (AES-256-GCM where every rank's CPU has AES "
       "instructions, else ChaCha20-Poly1305), or `auto`: `on` when `relay` is set (a relay then "
       "forwards ciphertext only), else `none`. Needs `secret_file` unless `none`; set the same "
       "on every rank. A tampered, replayed or foreign message fails its receive naming the "
       "sender. Costs 24 bytes per message and CPU time "
       "([docs/security.md](docs/security.md#encryption))"},
      {"relay", "transport", "str", "", "unset",
       "relays, `host:port[,host:port]`, for pairs of ranks that cannot connect to each other "
       "either way (both behind NATs): both dial out to the first `torchwan-relay` that admits "
       "them, which forwards their lanes; its stats link is `relay`. ZeroMQ link only; turns "
       "`encryption` on by default ([docs/reachability.md](docs/reachability.md))"},
      {"epoch", "transport", "int", "0", "0",
       "membership epoch, set by the elastic layer for each epoch's group: connections and "
       "frames of another epoch are refused, so traffic recorded in one epoch cannot be replayed "
       "into the next"},
  };
  return options;
}

const OptionSpec* find_option(std::string_view name) {
  for (const OptionSpec& option : option_registry()) {
    if (option.name == name) return &option;
  }
  return nullptr;
}

std::vector<std::string> option_names(std::string_view layer) {
  std::vector<std::string> names;
  for (const OptionSpec& option : option_registry()) {
    if (option.layer == layer) names.emplace_back(option.name);
  }
  return names;
}

std::string option_env_variable(std::string_view name) {
  std::string variable = "TORCHWAN_";
  for (char c : name) variable += static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
  return variable;
}

std::optional<std::string> option_env_value(std::string_view name) {
  const char* value = std::getenv(option_env_variable(name).c_str());
  if (value == nullptr || *value == '\0') return std::nullopt;
  return std::string(value);
}

void with_env_context(std::string_view name, const std::function<void()>& body) {
  try {
    body();
  } catch (const std::invalid_argument& error) {
    throw std::invalid_argument(option_env_variable(name) + ": " + error.what());
  }
}

void apply_env_options(std::string_view layer,
                       const std::function<void(const std::string&, const std::string&)>& set) {
  for (const std::string& name : option_names(layer)) {
    const std::optional<std::string> value = option_env_value(name);
    if (value) with_env_context(name, [&] { set(name, *value); });
  }
}

}  // namespace torchwan::base
