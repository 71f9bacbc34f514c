// Writes the seed corpus of every harness: valid encodings made by our own encoders (so the fuzzer
// starts past the magic and checksum checks) and a few malformed inputs. Run as
//   fuzz_write_seeds <corpus dir>
// to regenerate fuzz/corpus/ after a wire format change.
#include <cstdint>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <span>
#include <string>
#include <vector>

#include "base/byte_io.h"
#include "csrc/compression/codec.h"
#include "csrc/signature.h"
#include "elastic/membership_wire.h"
#include "relay/relay_wire.h"
#include "transport/core/control_wire.h"
#include "transport/secure/data_auth.h"
#include "transport/secure/message_cipher.h"
#include "transport/ucx/ucx_wire.h"
#include "transport/zmq/zmq_records.h"
#include "transport/zmq/zmq_wire.h"

namespace {

namespace fs = std::filesystem;
using Bytes = std::vector<uint8_t>;

void write(const fs::path& root, const std::string& harness, const std::string& name,
           const Bytes& bytes) {
  const fs::path dir = root / harness;
  fs::create_directories(dir);
  std::ofstream out(dir / name, std::ios::binary);
  out.write(reinterpret_cast<const char*>(bytes.data()),
            static_cast<std::streamsize>(bytes.size()));
}

Bytes text(const std::string& value) { return {value.begin(), value.end()}; }

Bytes prefixed(uint8_t first, const Bytes& rest) {
  Bytes out{first};
  out.insert(out.end(), rest.begin(), rest.end());
  return out;
}

void compression_seeds(const fs::path& root) {
  using namespace torchwan::compression;
  std::vector<float> input(96);
  for (size_t i = 0; i < input.size(); ++i) input[i] = static_cast<float>(i % 7) - 3.25f;
  const struct {
    const char* name;
    Codec codec;
  } codecs[] = {{"float16", Codec::kFloat16}, {"bfloat16", Codec::kBFloat16},
                {"int8", Codec::kInt8Block},  {"float8", Codec::kFloat8Block},
                {"sign", Codec::kSignBlock},  {"topk", Codec::kTopK}};
  for (const auto& codec : codecs) {
    CodecConfig config;
    config.codec = codec.codec;
    config.block_size = codec.codec == Codec::kInt8Block || codec.codec == Codec::kFloat8Block ||
                                codec.codec == Codec::kSignBlock
                            ? 32
                            : 0;
    config.topk_fraction = 0.1;
    Bytes payload(encoded_size(config, input.size()));
    encode(config, input, payload);
    write(root, "compression_decode", std::string("valid_") + codec.name, payload);
    write(root, "compression_header", std::string("valid_") + codec.name, payload);
    Bytes truncated(payload.begin(), payload.begin() + static_cast<std::ptrdiff_t>(kHeaderSize));
    write(root, "compression_header", std::string("truncated_") + codec.name, truncated);
  }
  write(root, "compression_decode", "garbage", text("TWCP not a header"));
}

void elastic_seeds(const fs::path& root) {
  using namespace torchwan::elastic;
  const uint64_t job = job_hash("fuzz");
  MemberInfo member{"rank-a", "tcp://10.0.0.1:4000", "eu", {"ucx", "zmq"}};
  const MemberRef ref{"rank-a", 42};
  RegisterPayload reg{"fuzz", member, 7, 3, {"rank-a", "rank-b"}};
  const StatusPayload status{MemberState::kActive, 3, 1};
  const PeerLostPayload lost{ref, "rank-b", "timeout"};
  const EpochPayload epoch{4, 0, {member, MemberInfo{"rank-b", "tcp://10.0.0.2:4000", "us", {}}}};
  const ReasonPayload reason{"quorum lost"};
  const struct {
    const char* name;
    MessageType type;
    Bytes payload;
    uint8_t selector;  // fuzz_elastic_payload's decoder choice
  } messages[] = {
      {"register", MessageType::kRegister, encode_payload(reg), 1},
      {"heartbeat", MessageType::kHeartbeat, encode_payload(ref), 0},
      {"peer_lost", MessageType::kPeerLost, encode_payload(lost), 3},
      {"status", MessageType::kStatus, encode_payload(status), 2},
      {"epoch", MessageType::kEpoch, encode_payload(epoch), 4},
      {"stop", MessageType::kStop, encode_payload(reason), 5},
      {"goodbye", MessageType::kGoodbye, {}, 6},
  };
  for (const auto& m : messages) {
    write(root, "elastic_message", m.name, encode_message(m.type, job, 3, 9, m.payload));
    write(root, "elastic_payload", m.name, prefixed(m.selector, m.payload));
  }
  write(root, "elastic_message", "wrong_job",
        encode_message(MessageType::kHeartbeat, job + 1, 0, 1, encode_payload(ref)));
  write(root, "elastic_message", "truncated", text("TWEL"));
  // Script: u32, str, str_list, count(1), expect_end; then bytes for them.
  Bytes script{5, 2, 4, 5, 6, 7};
  torchwan::base::ByteWriter writer;
  writer.put<uint32_t>(1);
  writer.put_string("name");
  writer.put<uint32_t>(2);  // a list of two strings
  writer.put_string("a");
  writer.put_string("bc");
  writer.put<uint32_t>(0);
  const Bytes body = writer.take();
  script.insert(script.end(), body.begin(), body.end());
  write(root, "byte_reader", "valid", script);
  write(root, "byte_reader", "huge_length", Bytes{1, 4, 0xff, 0xff, 0xff, 0x7f, 'x'});
}

void zmq_seeds(const fs::path& root) {
  using namespace torchwan::transport::zmq_detail;
  const auto with_payload_size = [](uint32_t payload_size, const auto& header) {
    Bytes out(4);
    std::memcpy(out.data(), &payload_size, sizeof(payload_size));
    out.insert(out.end(), header.begin(), header.end());
    return out;
  };
  Header data{.type = MessageType::kData,
              .tag = 5,
              .index = 1,
              .total_length = 100,
              .offset = 64,
              .length = 36};
  write(root, "zmq_header", "data", with_payload_size(36, encode_header(data)));
  Header control{.type = MessageType::kControl,
                 .total_length = torchwan::transport::core::kControlBytes,
                 .length = torchwan::transport::core::kControlBytes};
  write(root, "zmq_header", "control",
        with_payload_size(torchwan::transport::core::kControlBytes, encode_header(control)));
  Header cancel{.type = MessageType::kCancel, .tag = 5, .index = 2};
  write(root, "zmq_header", "cancel", with_payload_size(0, encode_header(cancel)));
  data.offset = 90;  // piece past the end of its message
  write(root, "zmq_header", "outside", with_payload_size(36, encode_header(data)));
  const std::string id = routing_id(3, 1);
  write(root, "zmq_routing_id", "valid", text(id));
  write(root, "zmq_routing_id", "generated", Bytes{0, 1, 2, 3, 4});
  const Bytes address = encode_address_record({{"10.0.0.1", "192.168.7.2"}, {5000, 5001}});
  write(root, "zmq_address_record", "valid", address);
  write(root, "zmq_address_record", "truncated", Bytes(address.begin(), address.end() - 1));
  write(root, "zmq_address_record", "old_text", text("torchwan-zmq 1\ntcp://x:1\n"));
  const Bytes reach = encode_reach_record({1, {1, 0, 1}});
  write(root, "zmq_reach_record", "valid", reach);
  write(root, "zmq_reach_record", "truncated", Bytes(reach.begin(), reach.end() - 1));
  const Bytes relayed = encode_relay_record({"00ff00ff00ff00ff", "tcp://10.0.0.1:443", ""});
  write(root, "zmq_relay_record", "registered", relayed);
  write(root, "zmq_relay_record", "failed", encode_relay_record({"00ff", "", "no relay answered"}));
  write(root, "zmq_relay_record", "truncated", Bytes(relayed.begin(), relayed.end() - 1));
}

void data_auth_seeds(const fs::path& root) {
  using namespace torchwan::transport;
  AuthRecord open;
  write(root, "data_auth_record", "no_secret", encode_auth_record(open));
  AuthRecord secured{
      .has_secret = true, .job_hash = job_id_hash("job"), .epoch = 3, .fingerprint = "0123abcd"};
  secured.nonce.fill(0x5a);
  write(root, "data_auth_record", "secret", encode_auth_record(secured));
  Bytes truncated = encode_auth_record(secured);
  truncated.pop_back();
  write(root, "data_auth_record", "truncated", truncated);
  AuthRecord encrypted = secured;
  encrypted.encryption = EncryptionSetting::kOn;
  encrypted.has_aes = true;
  write(root, "data_auth_record", "encrypted", encode_auth_record(encrypted));
  // Version 1 had no encryption field: 4 bytes shorter.
  Bytes version1 = encode_auth_record(secured);
  version1[4] = 1;
  version1.erase(version1.begin() + 36, version1.begin() + 40);
  write(root, "data_auth_record", "version1", version1);
}

// Inputs of fuzz_sealed_message: cipher selector, sender, receiver, tag, then the sealed bytes,
// sealed under the harness's fixed key.
void sealed_message_seeds(const fs::path& root) {
  using namespace torchwan::transport;
  std::array<uint8_t, torchwan::security::kDerivedKeyBytes> key_bytes{};
  key_bytes.fill(0x42);
  const torchwan::security::DerivedKey key(key_bytes);
  const Bytes plaintext = text("a data message of some length");
  for (const Cipher cipher : {Cipher::kAes256Gcm, Cipher::kChacha20Poly1305}) {
    if (cipher == Cipher::kAes256Gcm && !aes_gcm_available()) continue;
    const MessageCipher sealer(cipher, key);
    const uint8_t selector = cipher == Cipher::kAes256Gcm ? 0 : 1;
    Bytes input{selector, 2, 1, 7};
    const size_t header = input.size();
    input.resize(header + plaintext.size() + kSealOverheadBytes);
    sealer.seal({2, 1, 7}, 5, plaintext.data(), plaintext.size(), input.data() + header);
    const std::string name = cipher_name(cipher);
    write(root, "sealed_message", name, input);
    Bytes flipped = input;
    flipped[header + kSealedHeaderBytes + 3] ^= 1;
    write(root, "sealed_message", name + "-flipped", flipped);
    Bytes empty{selector, 2, 1, 7};
    empty.resize(header + kSealOverheadBytes);
    sealer.seal({2, 1, 7}, 0, nullptr, 0, empty.data() + header);
    write(root, "sealed_message", name + "-empty", empty);
  }
  write(root, "sealed_message", "short", Bytes{1, 0, 1, 0, 9, 9, 9});
}

void control_wire_seeds(const fs::path& root) {
  using namespace torchwan::transport::core;
  const Hello hello{.rank = 1,
                    .size = 4,
                    .lane = 1,
                    .lanes = 2,
                    .chunk_bytes = 1 << 20,
                    .stripe_min_bytes = 1 << 16};
  write(root, "control_wire", "hello", encode_control(hello));
  write(root, "control_wire", "heartbeat", encode_control(Heartbeat{}));
  write(root, "control_wire", "abort",
        encode_control(Goodbye{Departure::kAbort, "rank 3 lost its GPU"}));
  write(root, "control_wire", "shutdown", encode_control(Goodbye{}));
  write(root, "control_wire", "ack", encode_control(GoodbyeAck{}));
  write(root, "control_wire", "short", Bytes{0x54, 0x57, 0x57, 0x4E, 3, 0});
}

void ucx_seeds(const fs::path& root) {
  using namespace torchwan::transport::ucx;
  AddressRecord record{.rank = 2,
                       .stripe_min_bytes = 1 << 16,
                       .chunk_bytes = 1 << 20,
                       .lane_addresses = {Bytes(24, 0xab), Bytes(30, 0xcd)}};
  const Bytes encoded = encode_address_record(record);
  write(root, "ucx_address_record", "valid", encoded);
  write(root, "ucx_address_record", "truncated", Bytes(encoded.begin(), encoded.end() - 3));
}

void signature_seeds(const fs::path& root) {
  using namespace torchwan::engine;
  WireSignature signature;
  signature.kind = 1;
  signature.dtype = 2;
  signature.op = 0;
  signature.count = 999;
  signature.describe = "allreduce(float32 x 999, SUM)";
  const EncodedSignature encoded = encode_signature(signature);
  write(root, "signature", "valid", Bytes(encoded.begin(), encoded.end()));
  signature.has_pair = true;
  signature.pair_send_bytes = 64;
  signature.pair_recv_bytes = 128;
  const EncodedSignature pair = encode_signature(signature);
  write(root, "signature", "pair", Bytes(pair.begin(), pair.end()));
  write(root, "signature", "short", Bytes(encoded.begin(), encoded.begin() + 16));
}

void other_seeds(const fs::path& root) {
  // fuzz_topology and fuzz_transport_options read their input through FuzzedDataProvider, so any
  // bytes are a valid start; a few shapes of different lengths.
  write(root, "topology", "small", Bytes{4, 1, 'e', 'u', 0, 'u', 's', 0, 'e', 'u', 0, 'u', 's', 0});
  Bytes rtt{6, 0, 0};
  for (int i = 0; i < 36; ++i) {
    const double value = (i % 7 == 0) ? 0.0 : (i % 2 ? 1.0 : 80.0);
    const auto* raw = reinterpret_cast<const uint8_t*>(&value);
    rtt.insert(rtt.end(), raw, raw + sizeof(value));
  }
  write(root, "topology", "rtt", rtt);
  write(root, "transport_options", "lanes",
        text("\x01"
             "4\\\x02"
             "1048576\\\x03"
             "bbr"));
  write(root, "transport_options", "garbage", text("\xff\xff-1e99\\\x00x"));
}

}  // namespace

void relay_seeds(const fs::path& root) {
  using namespace torchwan::relay;
  const struct {
    const char* name;
    Frame frame;
  } frames[] = {{"register", register_frame("job-1", "rank-0")},
                {"registered", registered_frame(4u << 20, 256u << 10)},
                {"data", data_frame("rank-1", 3, 65536)},
                {"credit", credit_frame("rank-1", 3, 65536)},
                {"no_route", no_route_frame("rank-9", "not registered")},
                {"refused", refused_frame("flooded its stream")}};
  for (const auto& f : frames) write(root, "relay_frame", f.name, encode_frame(f.frame));
  write(root, "relay_frame", "truncated", text("TWRL"));
}

int main(int argc, char** argv) {
  if (argc != 2) {
    std::cerr << "usage: " << argv[0] << " <corpus dir>\n";
    return 2;
  }
  const fs::path root = argv[1];
  compression_seeds(root);
  elastic_seeds(root);
  relay_seeds(root);
  zmq_seeds(root);
  ucx_seeds(root);
  control_wire_seeds(root);
  data_auth_seeds(root);
  sealed_message_seeds(root);
  signature_seeds(root);
  other_seeds(root);
  return 0;
}
