// Authentication of data connections, shared by both transports.
//
// Every rank publishes an auth record in the bootstrap store before its addresses: whether it
// holds a job secret, the secret's fingerprint, its job id hash and epoch, and a fresh random
// nonce. A connecting rank's hello on (receiver, lane) carries
//   HMAC(secret, "torchwan data v1" | job id | epoch | sender | receiver | lane | receiver's nonce)
// which the receiver checks against its own nonce before it accepts anything else from that
// connection. The nonce is new for every transport, so a hello recorded in one group, job or
// epoch proves nothing in another. The records themselves are only claims: they let every rank
// name a misconfigured rank at once ("wrong job secret") instead of timing out, while the proofs
// are what admits a connection.
#pragma once

#include <chrono>
#include <cstdint>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "transport/options.h"
#include "transport/secure/encryption.h"
#include "transport/secure/job_secret.h"
#include "transport/store.h"

namespace torchwan::transport {

// A 64-bit hash of the job id that frame headers carry (0 for the empty job id).
uint64_t job_id_hash(const std::string& job_id);

// What a rank publishes under auth_record_key(rank).
struct AuthRecord {
  bool has_secret = false;
  uint64_t job_hash = 0;
  uint64_t epoch = 0;
  std::string fingerprint;  // 8 hex digits, or empty without a secret
  // TransportOptions::encryption, and whether this rank's CPU runs AES-256-GCM, so that every
  // rank resolves "on" to the same cipher (version 2 of the record).
  EncryptionSetting encryption = EncryptionSetting::kNone;
  bool has_aes = false;
  security::Nonce nonce{};
};
// Version 2: magic, version, flags, fingerprint, job hash, epoch, encryption setting, nonce.
inline constexpr size_t kAuthRecordBytes = 4 + 4 + 4 + 8 + 8 + 8 + 4 + security::kNonceBytes;
std::vector<uint8_t> encode_auth_record(const AuthRecord& record);
std::optional<AuthRecord> decode_auth_record(const std::vector<uint8_t>& bytes, std::string& why);

// Every rank's published record, in rank order (waiting at most `timeout` for each). Throws
// TransportError(kBootstrap) naming the rank whose record is missing or invalid. For use after
// DataAuth::collect succeeded, when all of them are known to be there and to agree.
std::vector<AuthRecord> read_auth_records(Store& store, int size, std::chrono::milliseconds timeout,
                                          const std::string& who);

// The key every rank of one transport group derives for encrypting data messages: keyed by the
// job secret, over the job id, epoch, cipher and every rank's fresh record nonce, so that traffic
// recorded in another group, epoch or job never decrypts under it.
security::DerivedKey derive_session_key(const security::JobSecret& secret,
                                        const std::string& job_id, uint64_t epoch, Cipher cipher,
                                        const std::vector<AuthRecord>& records);

class DataAuth {
 public:
  // Loads options.secret_file when it is set. `who` prefixes every message ("zmq transport rank
  // 3"). Throws TransportError(kInvalidArgument) naming the file (never its content) when the
  // secret cannot be loaded.
  DataAuth(const TransportOptions& options, int rank, int size, std::string who);

  bool enabled() const { return secret_.has_value(); }
  const std::optional<security::JobSecret>& secret() const { return secret_; }
  uint64_t job_hash() const { return job_hash_; }
  uint64_t epoch() const { return epoch_; }

  // Publishes this rank's record. Call before publishing addresses, so that a peer that found
  // the addresses finds the record too.
  void publish(Store& store) const;
  // Reads every peer's record (waiting at most until `deadline`) and checks that all ranks agree
  // on the secret, job, epoch and encryption setting. Throws TransportError(kBootstrap) naming the
  // ranks that differ, the same on every rank: "rank(s) [2] failed authentication: wrong job
  // secret ...".
  void collect(Store& store, std::chrono::steady_clock::time_point deadline);

  // The proof this rank's hello to `peer` on `lane` carries (all zero when not enabled).
  security::Proof prove(int peer, int lane) const;
  // Whether `proof` is what `peer` must send this rank on `lane`; always true when not enabled.
  bool verify(int peer, int lane, const security::Proof& proof) const;

 private:
  // Throws, identically on every rank, when ranks hold different secrets (or none).
  void require_same_secret(const std::map<std::string, std::set<int>>& holders) const;
  std::vector<uint8_t> proof_message(int sender, int receiver, int lane,
                                     const security::Nonce& nonce) const;

  int rank_;
  int size_;
  std::string who_;
  std::string job_id_;
  uint64_t job_hash_;
  uint64_t epoch_;
  std::optional<security::JobSecret> secret_;
  EncryptionSetting encryption_;
  security::Nonce nonce_{};
  std::vector<security::Nonce> peer_nonces_;  // per rank, from collect()
};

}  // namespace torchwan::transport
