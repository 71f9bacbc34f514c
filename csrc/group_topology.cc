#include "csrc/group_topology.h"

#include <fmt/format.h>
#include <fmt/ranges.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cstdint>
#include <cstdlib>
#include <fstream>
#include <limits>
#include <numeric>
#include <stdexcept>

#include "base/log.h"
#include "base/option_registry.h"
#include "csrc/collectives.h"
#include "csrc/exchange.h"
#include "transport/store.h"
#include "transport/transport.h"

namespace torchwan::engine {
namespace {

// Ping-pong rounds per pair; the minimum is kept, so one round delayed by a busy peer (or the
// first one, which may warm up connections) does not decide the clustering.
constexpr int kRttRounds = 5;
// Store keys: the transport's own bootstrap keys start with "tw/".
constexpr const char* kKeyPrefix = "twtopo/";

std::vector<uint8_t> bytes_of(const std::string& text) { return {text.begin(), text.end()}; }
std::string text_of(const std::vector<uint8_t>& bytes) { return {bytes.begin(), bytes.end()}; }

// This rank's row of round-trip times to every rank (0 for itself), in ms. All ranks ping all
// peers at once, so the whole measurement takes about kRttRounds of the longest round trip.
std::vector<double> measure_rtt_row(transport::Transport& transport,
                                    std::chrono::milliseconds timeout) {
  using Clock = std::chrono::steady_clock;
  const int size = transport.size();
  const int rank = transport.rank();
  std::vector<double> row(size, std::numeric_limits<double>::infinity());
  row[rank] = 0;
  // Declared before the Exchange: it releases its requests before these buffers go.
  const uint64_t ping = 0x7077616e70696e67;  // any payload: only the arrival time matters
  std::vector<uint64_t> pings_in(static_cast<size_t>(kRttRounds) * size);
  std::vector<uint64_t> echoes_in(static_cast<size_t>(kRttRounds) * size);
  const engine::CollectiveContext context{transport, 0, Clock::now() + timeout};
  engine::Exchange ex(context, "topology round-trip measurement");
  for (int round = 0; round < kRttRounds; ++round) {
    const uint32_t ping_step = 2 * round;
    const uint32_t echo_step = ping_step + 1;
    uint64_t* ping_in = pings_in.data() + static_cast<size_t>(round) * size;
    uint64_t* echo_in = echoes_in.data() + static_cast<size_t>(round) * size;
    std::vector<engine::Exchange::Handle> ping_recv(size);
    std::vector<engine::Exchange::Handle> echo_recv(size);
    std::vector<Clock::time_point> sent(size);
    int pending = 0;
    for (int peer = 0; peer < size; ++peer) {
      if (peer == rank) continue;
      ping_recv[peer] = ex.recv(peer, ping_step, &ping_in[peer], sizeof(uint64_t));
      echo_recv[peer] = ex.recv(peer, echo_step, &echo_in[peer], sizeof(uint64_t));
      sent[peer] = Clock::now();
      ex.send(peer, ping_step, &ping, sizeof(uint64_t));
      pending += 2;
    }
    while (pending > 0) {
      const uint64_t seen = ex.completions();
      bool progressed = false;
      for (int peer = 0; peer < size; ++peer) {
        if (ping_recv[peer] && ex.finished(ping_recv[peer])) {
          // Answered from the received buffer, which this round never writes again.
          ex.send(peer, echo_step, &ping_in[peer], sizeof(uint64_t));
          ping_recv[peer] = nullptr;
          --pending;
          progressed = true;
        }
        if (echo_recv[peer] && ex.finished(echo_recv[peer])) {
          const std::chrono::duration<double, std::milli> rtt = Clock::now() - sent[peer];
          row[peer] = std::min(row[peer], rtt.count());
          echo_recv[peer] = nullptr;
          --pending;
          progressed = true;
        }
      }
      if (!progressed) ex.wait_for_completion(seen);
    }
  }
  ex.wait_all();
  ex.finish();
  return row;
}

std::string encode_row(const std::vector<double>& row) {
  // fmt's shortest round-trip form: every rank parses back the exact values.
  return fmt::format("{}", fmt::join(row, ","));
}

std::vector<double> decode_row(const std::string& text, int size, int rank) {
  std::vector<double> row;
  const char* cursor = text.c_str();
  while (*cursor != '\0') {
    char* end = nullptr;
    row.push_back(std::strtod(cursor, &end));
    if (end == cursor) break;
    cursor = *end == ',' ? end + 1 : end;
  }
  if (static_cast<int>(row.size()) != size) {
    throw std::runtime_error(
        fmt::format("topology: rank {} published a malformed round-trip row '{}'", rank, text));
  }
  return row;
}

std::string describe(const engine::Topology& topology) {
  std::vector<std::string> parts;
  for (const auto& members : topology.regions) {
    parts.push_back(fmt::format("[{}]", fmt::join(members, ",")));
  }
  return fmt::format("{}", fmt::join(parts, " "));
}

engine::Topology flat_topology(int size) {
  return engine::topology_from_groups(std::vector<int>(size, 0));
}

std::string first_line_of(const char* path) {
  std::ifstream file(path);
  std::string line;
  std::getline(file, line);
  return line;
}

}  // namespace

std::string this_host_id() {
  std::array<char, 256> hostname{};
  if (gethostname(hostname.data(), hostname.size() - 1) != 0) hostname[0] = '\0';
  // The namespace link reads "net:[4026531840]"; an unreadable one leaves the id to the rest.
  std::array<char, 64> net_namespace{};
  const ssize_t length =
      readlink("/proc/self/ns/net", net_namespace.data(), net_namespace.size() - 1);
  if (length < 0) net_namespace[0] = '\0';
  return fmt::format("{}/{}/{}", hostname.data(), first_line_of("/proc/sys/kernel/random/boot_id"),
                     net_namespace.data());
}

void TopologyOptions::set(const std::string& name, const std::string& value) {
  if (name == "region") {
    // Labels travel through the store as text after a newline.
    if (value.find('\n') != std::string::npos) {
      throw std::invalid_argument("region: the label must not contain a newline");
    }
    region = value;
  } else if (name == "host_id") {
    if (value.find('\n') != std::string::npos) {
      throw std::invalid_argument("host_id: the id must not contain a newline");
    }
    host_id = value;
  } else if (name == "local_backend") {
    if (value != "auto" && value != "nccl" && value != "gloo" && value != "none") {
      throw std::invalid_argument(
          fmt::format("local_backend: '{}' is not one of auto, nccl, gloo, none", value));
    }
    local_backend = value;
  } else if (name == "topology") {
    if (value != "auto" && value != "regions" && value != "flat") {
      throw std::invalid_argument(
          fmt::format("topology: '{}' is not one of auto, regions, flat", value));
    }
    mode = value;
  } else {
    throw std::invalid_argument(fmt::format("unknown topology option '{}'", name));
  }
}

const std::vector<std::string>& TopologyOptions::field_names() {
  static const std::vector<std::string> names = base::option_names("topology");
  return names;
}

TopologyOptions TopologyOptions::from_env() {
  TopologyOptions options;
  base::apply_env_options(
      "topology",
      [&options](const std::string& name, const std::string& value) { options.set(name, value); });
  return options;
}

GroupTopology discover_group_topology(transport::Store& store, transport::Transport& transport,
                                      const TopologyOptions& options,
                                      std::chrono::milliseconds timeout) {
  const int size = transport.size();
  const int rank = transport.rank();
  GroupTopology result;
  if (size == 1) {
    result.topology = flat_topology(1);
    result.source = "flat";
    return result;
  }
  // Every rank's mode, host and label, so that all ranks check the same inputs and fail alike.
  const std::string host_id = options.host_id.empty() ? this_host_id() : options.host_id;
  // One line each; the label last, as the only field that may be empty.
  store.set(fmt::format("{}options/{}", kKeyPrefix, rank),
            bytes_of(options.mode + "\n" + options.local_backend + "\n" + host_id + "\n" +
                     options.region));
  std::vector<std::string> modes(size);
  std::vector<std::string> local_backends(size);
  std::vector<std::string> host_ids(size);
  std::vector<std::string> labels(size);
  for (int peer = 0; peer < size; ++peer) {
    const std::string text =
        text_of(store.get(fmt::format("{}options/{}", kKeyPrefix, peer), timeout));
    std::vector<std::string> fields;
    size_t start = 0;
    for (size_t end = text.find('\n'); end != std::string::npos && fields.size() < 3;
         end = text.find('\n', start)) {
      fields.push_back(text.substr(start, end - start));
      start = end + 1;
    }
    if (fields.size() != 3) {
      throw std::runtime_error(fmt::format(
          "topology: rank {} published malformed options '{}' (another torchwan version?)", peer,
          text));
    }
    modes[peer] = fields[0];
    local_backends[peer] = fields[1];
    host_ids[peer] = fields[2];
    labels[peer] = text.substr(start);
  }
  for (int peer = 1; peer < size; ++peer) {
    if (modes[peer] != modes[0]) {
      throw std::invalid_argument(fmt::format(
          "topology: rank 0 set topology '{}' but rank {} set '{}'; set the same on every rank",
          modes[0], peer, modes[peer]));
    }
    if (local_backends[peer] != local_backends[0]) {
      throw std::invalid_argument(
          fmt::format("topology: rank 0 set local_backend '{}' but rank {} set '{}'; set the "
                      "same on every rank",
                      local_backends[0], peer, local_backends[peer]));
    }
  }
  const std::string& mode = modes[0];
  const bool any_label =
      std::any_of(labels.begin(), labels.end(), [](const std::string& l) { return !l.empty(); });
  if (mode == "flat") {
    result.topology = flat_topology(size);
    result.source = "flat";
  } else if (mode == "regions" && !any_label) {
    throw std::invalid_argument(
        "topology 'regions' needs a region label (TORCHWAN_REGION) on every rank; none set one");
  } else if (any_label) {
    // Fails, naming both sets of ranks, when only some set a label.
    result.topology = engine::choose_topology(labels, {});
    result.source = "labels";
  } else if (size <= 2) {
    // Two ranks in two regions are the flat algorithms already.
    result.topology = flat_topology(size);
    result.source = "flat";
  } else {
    const std::vector<double> row = measure_rtt_row(transport, timeout);
    store.set(fmt::format("{}rtt/{}", kKeyPrefix, rank), bytes_of(encode_row(row)));
    result.rtt_ms.reserve(static_cast<size_t>(size) * size);
    for (int peer = 0; peer < size; ++peer) {
      const std::vector<double> peer_row = decode_row(
          text_of(store.get(fmt::format("{}rtt/{}", kKeyPrefix, peer), timeout)), size, peer);
      result.rtt_ms.insert(result.rtt_ms.end(), peer_row.begin(), peer_row.end());
    }
    result.topology = engine::choose_topology(labels, result.rtt_ms);
    result.source = "rtt";
  }
  if (local_backends[0] == "none") {
    // No host tier: every rank counts as a host of its own, so nothing goes through memory.
    result.topology.host_of.resize(static_cast<size_t>(size));
    std::iota(result.topology.host_of.begin(), result.topology.host_of.end(), 0);
  } else {
    result.topology.host_of = engine::hosts_from_ids(host_ids);
  }
  if (rank == 0) {
    auto logger = layer_logger("c10d");
    logger->info("topology: {} region(s) from {}: {}; hosts of the ranks: [{}]",
                 result.topology.region_count(), result.source, describe(result.topology),
                 fmt::join(result.topology.host_of, ","));
    if (!result.rtt_ms.empty()) {
      std::vector<std::string> rows;
      for (int i = 0; i < size; ++i) {
        std::vector<std::string> cells;
        for (int j = 0; j < size; ++j) {
          cells.push_back(fmt::format("{:.2f}", result.rtt_ms[static_cast<size_t>(i) * size + j]));
        }
        rows.push_back(fmt::format("[{}]", fmt::join(cells, " ")));
      }
      logger->info("topology: measured round-trip times (ms): {}", fmt::join(rows, " "));
    }
  }
  return result;
}

}  // namespace torchwan::engine
