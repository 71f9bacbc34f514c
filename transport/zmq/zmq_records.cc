#include "transport/zmq/zmq_records.h"

#include <algorithm>
#include <cctype>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "base/byte_io.h"

namespace torchwan::transport::zmq_detail {

namespace {

constexpr uint32_t kAddressMagic = 0x415A5754;      // "TWZA" in little-endian byte order
constexpr uint32_t kReachMagic = 0x525A5754;        // "TWZR"
constexpr uint32_t kRelayRecordMagic = 0x4C5A5754;  // "TWZL"
// 2: candidate hosts and lane ports in byte_io fields (1 was one text line per lane endpoint).
constexpr uint16_t kAddressVersion = 2;
constexpr uint16_t kReachVersion = 1;
constexpr uint16_t kRelayRecordVersion = 1;

// Hostnames, IPv4 and IPv6 literals: nothing that could change the meaning of an endpoint.
bool plausible_host(const std::string& host) {
  return !host.empty() && std::all_of(host.begin(), host.end(), [](char c) {
    return std::isalnum(static_cast<unsigned char>(c)) || c == '.' || c == ':' || c == '-' ||
           c == '_' || c == '%';
  });
}

// Every record's envelope: magic and version first, then what `read_fields` takes, then nothing
// more. Nothing, with `why` naming the malformed field, unless all of it holds.
template <typename ReadFields>
auto decode_record(const std::vector<uint8_t>& bytes, std::string& why, const char* what,
                   uint32_t magic, uint16_t version, ReadFields read_fields)
    -> std::optional<decltype(read_fields(std::declval<base::ByteReader&>()))> {
  const std::string name = std::string("zmq ") + what;
  try {
    base::ByteReader in(bytes, name);
    const auto found = in.get<uint32_t>("magic");
    if (found != magic) {
      in.reject("magic", std::string("not a torchwan zmq ") + what +
                             " (another transport or an older torchwan?)");
    }
    const auto found_version = in.get<uint16_t>("version");
    if (found_version != version) {
      in.reject("version", "version " + std::to_string(found_version) + ", expected " +
                               std::to_string(version) + " (mixed torchwan versions?)");
    }
    auto record = read_fields(in);
    in.expect_end();
    return record;
  } catch (const base::MalformedBytes& malformed) {
    why = malformed.what();
    return std::nullopt;
  }
}

}  // namespace

std::string AddressRecord::endpoint(size_t host, int lane) const {
  const std::string& name = hosts.at(host);
  const std::string port = std::to_string(ports.at(static_cast<size_t>(lane)));
  return name.find(':') != std::string::npos ? "tcp://[" + name + "]:" + port
                                             : "tcp://" + name + ":" + port;
}

std::vector<std::string> AddressRecord::lane0_endpoints() const {
  std::vector<std::string> endpoints;
  for (size_t host = 0; host < hosts.size(); ++host) endpoints.push_back(endpoint(host, 0));
  return endpoints;
}

std::string address_key(int rank) { return "tw/zmq/" + std::to_string(rank); }

std::vector<uint8_t> encode_address_record(const AddressRecord& record) {
  base::ByteWriter out;
  out.put<uint32_t>(kAddressMagic);
  out.put<uint16_t>(kAddressVersion);
  out.put<uint32_t>(static_cast<uint32_t>(record.hosts.size()));
  for (const auto& host : record.hosts) out.put_string(host);
  out.put<uint32_t>(static_cast<uint32_t>(record.ports.size()));
  for (uint16_t port : record.ports) out.put<uint16_t>(port);
  return out.take();
}

std::optional<AddressRecord> decode_address_record(const std::vector<uint8_t>& bytes,
                                                   std::string& why) {
  return decode_record(
      bytes, why, "address record", kAddressMagic, kAddressVersion, [](base::ByteReader& in) {
        AddressRecord record;
        // A host takes at least its length and one byte.
        const uint32_t hosts = in.get_count("host count", sizeof(uint32_t) + 1);
        if (hosts == 0 || hosts > kMaxCandidateHosts) {
          in.reject("host count", std::to_string(hosts) + " candidate hosts (1 to " +
                                      std::to_string(kMaxCandidateHosts) + " allowed)");
        }
        for (uint32_t i = 0; i < hosts; ++i) {
          std::string host = in.get_string("host", kMaxHostBytes);
          if (!plausible_host(host)) {
            in.reject("host", "'" + host + "' is not a host name or address");
          }
          record.hosts.push_back(std::move(host));
        }
        const uint32_t lanes = in.get_count("lane count", sizeof(uint16_t));
        if (lanes == 0 || lanes > kMaxRecordLanes) {
          in.reject("lane count", std::to_string(lanes) + " lanes (1 to " +
                                      std::to_string(kMaxRecordLanes) + " allowed)");
        }
        for (uint32_t lane = 0; lane < lanes; ++lane) {
          const auto port = in.get<uint16_t>("lane port");
          if (port == 0) {
            in.reject("lane port", "port 0 for lane " + std::to_string(lane));
          }
          record.ports.push_back(port);
        }
        return record;
      });
}

std::string reach_key(int rank) { return "tw/zmq/reach/" + std::to_string(rank); }

std::vector<uint8_t> encode_reach_record(const ReachRecord& record) {
  base::ByteWriter out;
  out.put<uint32_t>(kReachMagic);
  out.put<uint16_t>(kReachVersion);
  out.put<uint32_t>(static_cast<uint32_t>(record.rank));
  out.put<uint32_t>(static_cast<uint32_t>(record.reached.size()));
  for (char reached : record.reached) out.put<uint8_t>(reached != 0 ? 1 : 0);
  return out.take();
}

std::optional<ReachRecord> decode_reach_record(const std::vector<uint8_t>& bytes,
                                               std::string& why) {
  return decode_record(
      bytes, why, "reach record", kReachMagic, kReachVersion, [](base::ByteReader& in) {
        ReachRecord record;
        record.rank = static_cast<int>(in.get<uint32_t>("rank"));
        const uint32_t size = in.get_count("rank count", 1);
        if (size == 0 || size > kMaxReachRanks || static_cast<uint32_t>(record.rank) >= size) {
          in.reject("rank count",
                    std::to_string(size) + " ranks for rank " + std::to_string(record.rank));
        }
        for (uint32_t peer = 0; peer < size; ++peer) {
          const auto reached = in.get<uint8_t>("reached");
          if (reached > 1) {
            in.reject("reached", "value " + std::to_string(reached) + ", expected 0 or 1");
          }
          if (reached == 1 && static_cast<int>(peer) == record.rank) {
            in.reject("reached", "a rank claims to have connected to itself");
          }
          record.reached.push_back(static_cast<char>(reached));
        }
        return record;
      });
}

std::string relay_key(int rank) { return "tw/zmq/relay/" + std::to_string(rank); }

std::vector<uint8_t> encode_relay_record(const RelayRecord& record) {
  base::ByteWriter out;
  out.put<uint32_t>(kRelayRecordMagic);
  out.put<uint16_t>(kRelayRecordVersion);
  out.put_string(record.token);
  out.put_string(record.endpoint);
  out.put_string(record.failure);
  return out.take();
}

std::optional<RelayRecord> decode_relay_record(const std::vector<uint8_t>& bytes,
                                               std::string& why) {
  return decode_record(
      bytes, why, "relay record", kRelayRecordMagic, kRelayRecordVersion, [](base::ByteReader& in) {
        RelayRecord record;
        record.token = in.get_string("token", kMaxRelayTokenBytes);
        record.endpoint = in.get_string("endpoint", kMaxHostBytes + 16);
        record.failure = in.get_string("failure", kMaxRelayFailureBytes);
        if (record.failure.empty() && (record.token.empty() || record.endpoint.empty())) {
          in.fail("neither a registration (token and endpoint) nor a failure");
        }
        return record;
      });
}

std::optional<LinkRung> decide_rung(bool a_reached_b, bool b_reached_a) {
  if (a_reached_b && b_reached_a) return LinkRung::kDirect;
  if (a_reached_b || b_reached_a) return LinkRung::kReverse;
  return std::nullopt;
}

}  // namespace torchwan::transport::zmq_detail
