#include "transport/secure/data_auth.h"

#include <fmt/format.h>

#include <algorithm>
#include <cctype>
#include <map>
#include <mutex>
#include <set>

#include "base/byte_io.h"
#include "base/log.h"
#include "transport/errors.h"
#include "transport/peer_records.h"

namespace torchwan::transport {

namespace {

constexpr uint32_t kRecordMagic = 0x55415754;  // "TWAU" in little-endian byte order
// Version 2 added the encryption setting and the AES flag. Mixed versions are refused by name
// rather than guessed at: a version 1 rank cannot take part in an encrypted group.
constexpr uint32_t kRecordVersion = 2;
enum RecordFlags : uint32_t { kHasSecret = 1, kHasAes = 2, kKnownFlags = kHasSecret | kHasAes };
constexpr size_t kFingerprintChars = 8;
constexpr std::string_view kProofLabel = "torchwan data v1";
constexpr std::string_view kSessionKeyLabel = "torchwan data session key v1";

using Clock = std::chrono::steady_clock;

// A string as the proofs and the session key bind it: its u64 length, then its bytes.
void put_bound_string(base::ByteWriter& out, const std::string& text) {
  out.put<uint64_t>(text.size());
  out.put_bytes(text.data(), text.size());
}

std::string auth_record_key(int rank) { return fmt::format("tw/auth/{}", rank); }

// Ranks grouped by a value they published. Every rank sees the same records, so every rank picks
// the same "right" group, the largest (ties go to the group holding the lowest rank), and names
// the same culprits: everybody outside it.
template <typename Value>
typename std::map<Value, std::set<int>>::const_iterator agreeing_majority(
    const std::map<Value, std::set<int>>& groups) {
  auto right = groups.begin();
  for (auto it = groups.begin(); it != groups.end(); ++it) {
    if (it->second.size() > right->second.size() ||
        (it->second.size() == right->second.size() &&
         *it->second.begin() < *right->second.begin())) {
      right = it;
    }
  }
  return right;
}

// Throws, identically on every rank, when the ranks published different values of one field.
template <typename Value, typename Describe>
void require_agreement(const std::map<Value, std::set<int>>& groups, int this_rank,
                       const std::string& who, const std::string& what, const std::string& advice,
                       Describe describe) {
  if (groups.size() <= 1) return;
  const auto right = agreeing_majority(groups);
  std::set<int> odd;
  std::string details;
  for (const auto& [value, ranks] : groups) {
    if (value == right->first) continue;
    odd.insert(ranks.begin(), ranks.end());
    details += fmt::format("ranks {} {}; ", rank_list(ranks), describe(value));
  }
  throw TransportError(
      ErrorKind::kBootstrap,
      fmt::format("{}: rank(s) {} belong to {} ({}ranks {} {}; {}){}", who, rank_list(odd), what,
                  details, rank_list(right->second), describe(right->first), advice,
                  odd.count(this_rank) ? "; this rank is one of them" : ""),
      *odd.begin());
}

}  // namespace

uint64_t job_id_hash(const std::string& job_id) {
  if (job_id.empty()) return 0;
  // FNV-1a: an identity check that names a stray rank, not a security boundary (the proofs
  // cover the whole job id).
  uint64_t hash = 0xcbf29ce484222325ULL;
  for (char c : job_id) {
    hash ^= static_cast<uint8_t>(c);
    hash *= 0x100000001b3ULL;
  }
  return hash == 0 ? 1 : hash;
}

std::vector<uint8_t> encode_auth_record(const AuthRecord& record) {
  base::ByteWriter out;
  out.put(kRecordMagic);
  out.put(kRecordVersion);
  uint32_t flags = 0;
  if (record.has_secret) flags |= kHasSecret;
  if (record.has_aes) flags |= kHasAes;
  out.put(flags);
  std::string fingerprint = record.fingerprint;
  fingerprint.resize(kFingerprintChars, '\0');
  out.put_bytes(fingerprint.data(), fingerprint.size());
  out.put(record.job_hash);
  out.put(record.epoch);
  out.put(static_cast<uint32_t>(record.encryption));
  out.put_bytes(record.nonce);
  return out.take();
}

namespace {

AuthRecord read_auth_record(base::ByteReader& in) {
  const auto magic = in.get<uint32_t>("magic");
  const auto version = in.get<uint32_t>("version");
  if (magic == kRecordMagic && version != kRecordVersion) {
    // Before the size: a record of another version has another size, and "mixed torchwan
    // versions" says more than a byte count.
    in.reject("version", fmt::format("version {}, this rank speaks version {} (mixed torchwan "
                                     "versions?)",
                                     version, kRecordVersion));
  }
  if (in.size() != kAuthRecordBytes) {
    in.fail(fmt::format("{} bytes, expected {}", in.size(), kAuthRecordBytes));
  }
  if (magic != kRecordMagic) {
    in.fail(fmt::format("not a version {} auth record (mixed torchwan versions?)", kRecordVersion));
  }
  const auto flags = in.get<uint32_t>("flags");
  if ((flags & ~kKnownFlags) != 0) in.reject("flags", fmt::format("unknown flags {:#x}", flags));
  AuthRecord record;
  record.has_secret = (flags & kHasSecret) != 0;
  record.has_aes = (flags & kHasAes) != 0;
  const auto fingerprint = in.get_bytes(kFingerprintChars, "fingerprint");
  if (record.has_secret) {
    if (!std::all_of(fingerprint.begin(), fingerprint.end(),
                     [](uint8_t c) { return std::isxdigit(c) != 0; })) {
      in.reject("fingerprint", "not hex digits");
    }
    record.fingerprint.assign(fingerprint.begin(), fingerprint.end());
  }
  record.job_hash = in.get<uint64_t>("job hash");
  record.epoch = in.get<uint64_t>("epoch");
  const auto encryption = in.get<uint32_t>("encryption");
  if (encryption > kLastEncryptionSetting) {
    in.reject("encryption", fmt::format("unknown encryption setting {}", encryption));
  }
  record.encryption = static_cast<EncryptionSetting>(encryption);
  if (record.encryption != EncryptionSetting::kNone && !record.has_secret) {
    // Transport::create refuses this combination, so no torchwan rank publishes it.
    in.reject("encryption", "asks for encryption without a job secret");
  }
  const auto nonce = in.get_bytes(record.nonce.size(), "nonce");
  std::copy(nonce.begin(), nonce.end(), record.nonce.begin());
  in.expect_end();
  return record;
}

}  // namespace

std::optional<AuthRecord> decode_auth_record(const std::vector<uint8_t>& bytes, std::string& why) {
  base::ByteReader in(bytes, "auth record");
  try {
    return read_auth_record(in);
  } catch (const base::MalformedBytes& malformed) {
    why = malformed.what();
    return std::nullopt;
  }
}

namespace {

// What `rank` published, or the error that names it and the key.
AuthRecord published_record(const std::vector<uint8_t>& bytes, int rank, const std::string& who) {
  std::string why;
  auto record = decode_auth_record(bytes, why);
  if (!record) {
    throw TransportError(ErrorKind::kBootstrap,
                         fmt::format("{}: rank {} published an invalid auth record under '{}': {}",
                                     who, rank, auth_record_key(rank), why),
                         rank);
  }
  return std::move(*record);
}

}  // namespace

DataAuth::DataAuth(const TransportOptions& options, int rank, int size, std::string who)
    : rank_(rank),
      size_(size),
      who_(std::move(who)),
      job_id_(options.job_id),
      job_hash_(job_id_hash(options.job_id)),
      epoch_(options.epoch),
      encryption_(effective_encryption(options.encryption, !options.relay.empty())),
      peer_nonces_(static_cast<size_t>(size)) {
  if (options.secret_file.empty()) {
    if (encryption_ != EncryptionSetting::kNone) {
      throw TransportError(ErrorKind::kInvalidArgument,
                           fmt::format("{}: encryption={} needs the job secret (set "
                                       "TORCHWAN_SECRET_FILE or secret_file); the session key is "
                                       "derived from it",
                                       who_, options.encryption));
    }
    // Once per process: every group would say the same.
    static std::once_flag said;
    std::call_once(said, [&] {
      layer_logger("transport")
          ->info(
              "{}: the data plane is unauthenticated (set TORCHWAN_SECRET_FILE to require "
              "the job secret on every data connection)",
              who_);
    });
    return;
  }
  try {
    secret_.emplace(security::JobSecret::load_file(options.secret_file));
  } catch (const std::exception& error) {
    // load_file's message names the path, never the content.
    throw TransportError(ErrorKind::kInvalidArgument,
                         fmt::format("{}: cannot load the job secret: {}", who_, error.what()));
  }
  nonce_ = security::random_nonce();
  layer_logger("transport")
      ->debug("{}: data connections require the job secret (fingerprint {})", who_,
              secret_->fingerprint());
}

void DataAuth::publish(Store& store) const {
  AuthRecord record;
  record.has_secret = enabled();
  record.job_hash = job_hash_;
  record.epoch = epoch_;
  if (secret_) record.fingerprint = secret_->fingerprint();
  record.encryption = encryption_;
  record.has_aes = aes_gcm_available();
  record.nonce = nonce_;
  store.set(auth_record_key(rank_), encode_auth_record(record));
}

void DataAuth::collect(Store& store, Clock::time_point deadline) {
  const std::string mine = secret_ ? secret_->fingerprint() : std::string();
  std::map<std::string, std::set<int>> holders;  // fingerprint -> ranks, "" without a secret
  holders[mine].insert(rank_);
  std::map<uint64_t, std::set<int>> jobs{{job_hash_, {rank_}}};
  std::map<uint64_t, std::set<int>> epochs{{epoch_, {rank_}}};
  std::map<EncryptionSetting, std::set<int>> encryptions{{encryption_, {rank_}}};
  std::set<int> without_aes;
  if (!aes_gcm_available()) without_aes.insert(rank_);
  auto on_record = [&](int peer, const std::vector<uint8_t>& bytes) {
    const auto record = published_record(bytes, peer, who_);
    jobs[record.job_hash].insert(peer);
    epochs[record.epoch].insert(peer);
    holders[record.fingerprint].insert(peer);
    encryptions[record.encryption].insert(peer);
    if (!record.has_aes) without_aes.insert(peer);
    peer_nonces_[static_cast<size_t>(peer)] = record.nonce;
  };
  const std::vector<int> missing =
      read_peer_records(store, rank_, size_, auth_record_key, deadline, on_record);
  if (!missing.empty()) {
    throw TransportError(
        ErrorKind::kBootstrap,
        fmt::format("{}: ranks {} did not publish their auth records (store key {}) in time; are "
                    "they running, with the same world size and store?",
                    who_, rank_list(missing), auth_record_key(missing.front())),
        missing.front());
  }
  require_agreement(jobs, rank_, who_, "another job", "TORCHWAN_JOB_ID must match on every rank",
                    [](uint64_t hash) { return fmt::format("have job id hash {:#x}", hash); });
  require_agreement(epochs, rank_, who_, "another membership epoch",
                    "a member of an earlier or later membership?",
                    [](uint64_t epoch) { return fmt::format("are at epoch {}", epoch); });
  require_same_secret(holders);
  // After the secret: a rank without one cannot encrypt, and "no job secret" is the root cause.
  require_agreement(encryptions, rank_, who_, "another data encryption setting",
                    "TORCHWAN_ENCRYPTION must match on every rank", [](EncryptionSetting setting) {
                      return fmt::format("have encryption {}", encryption_setting_name(setting));
                    });
  if (encryption_ == EncryptionSetting::kAes256Gcm && !without_aes.empty()) {
    throw TransportError(
        ErrorKind::kBootstrap,
        fmt::format("{}: rank(s) {} cannot run encryption aes-256-gcm: their CPU lacks the AES "
                    "instructions libsodium requires (use encryption=on or chacha20-poly1305){}",
                    who_, rank_list(without_aes),
                    without_aes.count(rank_) ? "; this rank is one of them" : ""),
        *without_aes.begin());
  }
}

void DataAuth::require_same_secret(const std::map<std::string, std::set<int>>& holders) const {
  if (holders.size() == 1) return;
  const auto right = agreeing_majority(holders);
  auto describe = [](const std::string& fingerprint) {
    return fingerprint.empty() ? std::string("no job secret (TORCHWAN_SECRET_FILE unset)")
                               : fmt::format("job secret fingerprint {}", fingerprint);
  };
  std::set<int> failed;
  std::set<std::string> reasons;
  std::string details;
  for (const auto& [fingerprint, ranks] : holders) {
    if (fingerprint == right->first) continue;
    failed.insert(ranks.begin(), ranks.end());
    reasons.insert(fingerprint.empty()    ? "no job secret"
                   : right->first.empty() ? "a job secret where the others run without one"
                                          : "wrong job secret");
    details += fmt::format("ranks {} hold {}; ", rank_list(ranks), describe(fingerprint));
  }
  std::string reason;
  for (const auto& text : reasons) reason += (reason.empty() ? "" : " / ") + text;
  const bool this_rank_failed = failed.count(rank_) != 0;
  const std::string message =
      fmt::format("{}: rank(s) {} failed authentication: {} ({}ranks {} hold {}){}", who_,
                  rank_list(failed), reason, details, rank_list(right->second),
                  describe(right->first), this_rank_failed ? "; this rank is one of them" : "");
  throw TransportError(ErrorKind::kBootstrap, message, *failed.begin());
}

std::vector<AuthRecord> read_auth_records(Store& store, int size, std::chrono::milliseconds timeout,
                                          const std::string& who) {
  std::vector<AuthRecord> records;
  records.reserve(static_cast<size_t>(size));
  for (int rank = 0; rank < size; ++rank) {
    records.push_back(published_record(store.get(auth_record_key(rank), timeout), rank, who));
  }
  return records;
}

security::DerivedKey derive_session_key(const security::JobSecret& secret,
                                        const std::string& job_id, uint64_t epoch, Cipher cipher,
                                        const std::vector<AuthRecord>& records) {
  base::ByteWriter context;
  put_bound_string(context, job_id);
  context.put(epoch);
  context.put(static_cast<uint32_t>(cipher));
  context.put(static_cast<uint32_t>(records.size()));
  // Every rank's fresh nonce: a new group gets a new key even with the same job, epoch and ranks.
  for (const AuthRecord& record : records) context.put_bytes(record.nonce);
  return secret.derive_key(kSessionKeyLabel, context.take());
}

std::vector<uint8_t> DataAuth::proof_message(int sender, int receiver, int lane,
                                             const security::Nonce& nonce) const {
  base::ByteWriter message;
  put_bound_string(message, job_id_);
  message.put(epoch_);
  message.put(static_cast<uint32_t>(sender));
  message.put(static_cast<uint32_t>(receiver));
  message.put(static_cast<uint32_t>(lane));
  message.put_bytes(nonce);
  return message.take();
}

security::Proof DataAuth::prove(int peer, int lane) const {
  if (!secret_) return {};
  return secret_->prove(kProofLabel,
                        proof_message(rank_, peer, lane, peer_nonces_[static_cast<size_t>(peer)]));
}

bool DataAuth::verify(int peer, int lane, const security::Proof& proof) const {
  if (!secret_) return true;
  return secret_->verify(kProofLabel, proof_message(peer, rank_, lane, nonce_), proof);
}

}  // namespace torchwan::transport
