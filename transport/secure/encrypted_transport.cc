#include "transport/secure/encrypted_transport.h"

#include <fmt/format.h>

#include <algorithm>
#include <atomic>
#include <cstring>
#include <mutex>
#include <vector>

#include "base/buffer_pool.h"
#include "base/log.h"
#include "transport/request_arguments.h"
#include "transport/secure/data_auth.h"
#include "transport/secure/job_secret.h"
#include "transport/secure/message_cipher.h"
#include "transport/secure/replay_window.h"

namespace torchwan::transport {

namespace {

// How far out of order one sender's messages may complete here: 2^20 messages (engine chunks are
// at most a few MiB, so terabytes in flight) before the oldest outstanding one is given up. The
// window only grows as far as completions are actually out of order (128 KiB per sender at most).
constexpr uint64_t kReplaySpan = uint64_t{1} << 20;
// Idle staging buffers kept: enough for a pipeline of engine chunks or a few large messages.
constexpr size_t kPoolBytes = size_t{128} << 20;
constexpr size_t kPoolBuffers = 32;

std::string describe_tag(Tag tag) { return fmt::format("{:#x}", tag); }

}  // namespace

struct EncryptedTransport::Session {
  Session(int rank, int size, std::string who, Cipher cipher, const security::DerivedKey& key)
      : rank(rank),
        who(std::move(who)),
        cipher(cipher, key),
        send_counters(static_cast<size_t>(size)),
        windows(static_cast<size_t>(size)),
        pool({.max_cached_bytes = kPoolBytes, .max_cached_buffers = kPoolBuffers}) {}

  // Accepts `counter` from `sender` once; an empty string when fresh, else why not.
  std::string accept(int sender, uint64_t counter) {
    std::lock_guard<std::mutex> lock(windows_mutex);
    auto& window = windows[static_cast<size_t>(sender)];
    // Created on first use: most ranks receive from only a few peers.
    if (!window) window = std::make_unique<ReplayWindow>(kReplaySpan);
    switch (window->accept(counter)) {
      case ReplayWindow::Verdict::kFresh:
        return {};
      case ReplayWindow::Verdict::kReplayed:
        return "replayed (its counter was accepted before)";
      case ReplayWindow::Verdict::kTooOld:
        return "too old (its counter is below the replay window)";
    }
    return "rejected";
  }

  // The inner request's error as the caller should see it: a size mismatch of sealed messages
  // counts the overhead on both sides, which the caller did not ask for.
  std::exception_ptr explain(std::exception_ptr error) const {
    try {
      std::rethrow_exception(error);
    } catch (const TransportError& inner) {
      if (inner.kind() != ErrorKind::kSizeMismatch) return error;
      return std::make_exception_ptr(TransportError(
          ErrorKind::kSizeMismatch,
          fmt::format("{} (both lengths include the {} bytes encryption adds to each message)",
                      inner.what(), kSealOverheadBytes),
          inner.peer()));
    } catch (...) {
      return error;
    }
  }

  void reject(Request& outer, int sender, Tag tag, const std::string& why) const {
    const std::string message = fmt::format(
        "{}: message from rank {} on tag {} failed authentication: {} ({} bytes; the caller's "
        "buffer is untouched)",
        who, sender, describe_tag(tag), why, outer.length());
    layer_logger("transport")->error("{}", message);
    outer.fail(std::make_exception_ptr(TransportError(ErrorKind::kProtocol, message, sender)));
  }

  const int rank;
  const std::string who;
  const MessageCipher cipher;
  std::vector<std::atomic<uint64_t>> send_counters;  // next counter per receiver
  std::mutex windows_mutex;
  std::vector<std::unique_ptr<ReplayWindow>> windows;  // per sender
  base::BufferPool pool;                               // the messages' sealed forms
};

EncryptedTransport::EncryptedTransport(std::unique_ptr<Transport> inner, Store& store)
    : ForwardingTransport(std::move(inner)) {
  const TransportOptions& options = inner_->options();
  const int rank = inner_->rank();
  const int size = inner_->size();
  const std::string who = fmt::format("encrypted {} rank {}", inner_->name(), rank);
  std::optional<security::JobSecret> secret;
  try {
    secret.emplace(security::JobSecret::load_file(options.secret_file));
  } catch (const std::exception& error) {
    throw TransportError(ErrorKind::kInvalidArgument,
                         fmt::format("{}: cannot load the job secret: {}", who, error.what()));
  }
  const auto records = read_auth_records(store, size, options.connect_timeout, who);
  const auto& mine = records[static_cast<size_t>(rank)];
  if (mine.fingerprint != secret->fingerprint()) {
    throw TransportError(
        ErrorKind::kBootstrap,
        fmt::format("{}: the job secret file {} changed while connecting "
                    "(fingerprint {}, published {})",
                    who, options.secret_file, secret->fingerprint(), mine.fingerprint));
  }
  bool every_rank_has_aes = true;
  for (size_t peer = 0; peer < records.size(); ++peer) {
    // DataAuth::collect has refused disagreement already; this guards the key derivation.
    if (records[peer].encryption != mine.encryption) {
      throw TransportError(ErrorKind::kBootstrap,
                           fmt::format("{}: rank {} published encryption {}, this rank {}", who,
                                       peer, encryption_setting_name(records[peer].encryption),
                                       encryption_setting_name(mine.encryption)),
                           static_cast<int>(peer));
    }
    every_rank_has_aes = every_rank_has_aes && records[peer].has_aes;
  }
  const Cipher cipher = resolve_cipher(mine.encryption, every_rank_has_aes);
  const security::DerivedKey key =
      derive_session_key(*secret, options.job_id, options.epoch, cipher, records);
  session_ = std::make_shared<Session>(rank, size, who, cipher, key);
  layer_logger("transport")
      ->debug("{}: data messages are sealed with {} (key from job secret fingerprint {})", who,
              cipher_name(cipher), secret->fingerprint());
}

EncryptedTransport::~EncryptedTransport() {
  // The inner transport goes first, so that requests it fails on the way out still find this
  // transport whole in their callbacks.
  inner_.reset();
}

std::string EncryptedTransport::name() const {
  return inner_->name() + "+" + cipher_name(session_->cipher.cipher());
}

Cipher EncryptedTransport::cipher() const { return session_->cipher.cipher(); }

void EncryptedTransport::check_arguments(const Posting& posting) const {
  check_request_arguments(session_->who, rank(), size(), posting);
  // Sealing adds a limit of its own: one message must fit the cipher's counter space.
  if (posting.length > session_->cipher.max_message_bytes()) {
    throw TransportError(
        ErrorKind::kInvalidArgument,
        fmt::format("{}: {}: {} bytes exceed the {} bytes {} can seal in one message",
                    session_->who, posting.call(), posting.length,
                    session_->cipher.max_message_bytes(), cipher_name(session_->cipher.cipher())),
        posting.peer);
  }
}

namespace {

// One message in flight: its staging buffer stays alive until the inner request is done.
struct Staged {
  std::shared_ptr<Request> outer;
  base::BufferPool::Buffer buffer;
};

}  // namespace

std::shared_ptr<Request> EncryptedTransport::post(Posting posting) {
  check_arguments(posting);
  return posting.is_send() ? send(std::move(posting)) : receive(std::move(posting));
}

std::shared_ptr<Request> EncryptedTransport::send(Posting posting) {
  const int peer = posting.peer;
  const Tag tag = posting.tag;
  const size_t length = posting.length;
  Session& session = *session_;
  auto staged = std::make_shared<Staged>();
  staged->outer = std::make_shared<Request>(peer, tag, length, std::move(posting.callback));
  const size_t sealed_length = length + kSealOverheadBytes;
  staged->buffer = session.pool.take(sealed_length);
  const uint64_t counter = session.send_counters[static_cast<size_t>(peer)].fetch_add(1);
  session.cipher.seal({session.rank, peer, tag}, counter, posting.data, length,
                      staged->buffer.data());
  const auto outer = staged->outer;
  auto inner = inner_->isend(peer, tag, staged->buffer.data(), sealed_length,
                             [session = session_, staged](Request& request) {
                               const auto error = request.error();
                               staged->buffer.reset();  // back to the pool
                               if (error) {
                                 staged->outer->fail(session->explain(error));
                               } else {
                                 staged->outer->complete_part();
                               }
                             });
  outer->forward_cancel_to(inner);
  return outer;
}

std::shared_ptr<Request> EncryptedTransport::receive(Posting posting) {
  const Tag tag = posting.tag;
  void* data = posting.data;
  auto staged = std::make_shared<Staged>();
  staged->outer =
      std::make_shared<Request>(posting.peer, tag, posting.length, std::move(posting.callback));
  const size_t sealed_length = posting.length + kSealOverheadBytes;
  staged->buffer = session_->pool.take(sealed_length);
  auto on_done = [session = session_, staged, data, tag, sealed_length](Request& request) {
    Request& outer = *staged->outer;
    if (const auto error = request.error()) {
      staged->buffer.reset();  // back to the pool
      outer.fail(session->explain(error));
      return;
    }
    const int sender = request.source();
    if (outer.peer() == kAnySource) outer.set_source(sender);
    uint8_t* sealed = staged->buffer.data();
    const auto counter =
        session->cipher.open_in_place({sender, session->rank, tag}, sealed, sealed_length);
    std::string why;
    if (!counter) {
      why = "tampered or not from this job";
    } else {
      why = session->accept(sender, *counter);
    }
    if (why.empty() && outer.length() > 0) {
      std::memcpy(data, sealed + kSealedHeaderBytes, outer.length());
    }
    staged->buffer.reset();  // back to the pool
    if (!why.empty()) {
      session->reject(outer, sender, tag, why);
      return;
    }
    outer.complete_part();
  };
  const auto outer = staged->outer;
  posting.data = staged->buffer.data();
  posting.length = sealed_length;
  posting.callback = std::move(on_done);
  std::shared_ptr<Request> inner = inner_->post(std::move(posting));
  outer->forward_cancel_to(inner);
  return outer;
}

}  // namespace torchwan::transport
