// The call-signature half of Exchange: see "Call signatures" in exchange.h.
#include <chrono>
#include <string>
#include <utility>

#include "csrc/exchange.h"
#include "transport/errors.h"

namespace torchwan::engine {
namespace {

using Clock = std::chrono::steady_clock;
using transport::ErrorKind;
using transport::TransportError;

// How long a failure that a mismatch can cause waits for the blamed peer's signature before it
// is reported as it is. The signature left that peer before the data did, so it is normally
// already here or a moment away.
constexpr std::chrono::seconds kSignatureGrace{2};

ErrorKind kind_of(const std::exception_ptr& error) {
  try {
    std::rethrow_exception(error);
  } catch (const TransportError& transport_error) {
    return transport_error.kind();
  } catch (...) {
    return ErrorKind::kInternal;
  }
}

}  // namespace

void Exchange::start_signature_check(const CallSignature& signature, PairBytes pair_bytes) {
  const auto peers = static_cast<size_t>(size_);
  const bool has_pair = pair_bytes.send.size() == peers && pair_bytes.recv.size() == peers;
  expected_.assign(peers, wire_signature(signature));
  signature_sends_.resize(peers);
  signature_recvs_.resize(peers);
  signature_in_.assign(peers, nullptr);
  signature_checked_.assign(peers, true);
  // Receives first, so a peer's signature never waits unexpected where it need not.
  for (int peer = 0; peer < size_; ++peer) {
    if (peer == rank_) continue;
    const auto index = static_cast<size_t>(peer);
    if (has_pair) {
      expected_[index].has_pair = true;
      expected_[index].pair_send_bytes = pair_bytes.send[index];
      expected_[index].pair_recv_bytes = pair_bytes.recv[index];
    }
    signature_in_[index] = scratch(kSignatureBytes);
    signature_checked_[index] = false;
    ++signatures_unchecked_;
    signature_recvs_[index] = recv(peer, kSignatureStep, signature_in_[index], kSignatureBytes);
  }
  for (int peer = 0; peer < size_; ++peer) {
    if (peer == rank_) continue;
    const auto index = static_cast<size_t>(peer);
    const EncodedSignature encoded = encode_signature(expected_[index]);
    uint8_t* out = scratch(kSignatureBytes);
    std::copy(encoded.begin(), encoded.end(), out);
    signature_sends_[index] = send(peer, kSignatureStep, out, kSignatureBytes);
  }
}

std::string Exchange::judge_signature(int peer) const {
  const auto index = static_cast<size_t>(peer);
  const Handle& request = signature_recvs_[index];
  if (auto error = request->error()) {
    if (kind_of(error) != ErrorKind::kSizeMismatch) return {};
    return "rank " + std::to_string(peer) + " sent no call signature where rank " +
           std::to_string(rank_) + " called " +
           (expected_[index].describe.empty() ? std::string(collective_)
                                              : expected_[index].describe) +
           " (is signature checking on for every rank, and do they run the same torchwan?)";
  }
  std::string why;
  const auto theirs = decode_signature(signature_in_[index], kSignatureBytes, why);
  if (!theirs) {
    return "rank " + std::to_string(peer) + " sent an invalid call signature: " + why;
  }
  return signature_mismatch(expected_[index], rank_, *theirs, peer);
}

void Exchange::check_signatures() {
  for (int peer = 0; peer < size_; ++peer) {
    const auto index = static_cast<size_t>(peer);
    if (signature_checked_[index] || !signature_recvs_[index]->done()) continue;
    signature_checked_[index] = true;
    --signatures_unchecked_;
    const std::string mismatch = judge_signature(peer);
    if (!mismatch.empty()) {
      fail_with(std::make_exception_ptr(TransportError(ErrorKind::kMismatch, mismatch, peer)),
                peer);
    }
    if (auto error = signature_recvs_[index]->error()) fail_with(error, peer);
  }
}

std::pair<std::exception_ptr, int> Exchange::arrived_mismatch() const {
  for (int peer = 0; peer < size_; ++peer) {
    const auto index = static_cast<size_t>(peer);
    if (peer == rank_ || !signature_recvs_[index] || !signature_recvs_[index]->done()) continue;
    const std::string mismatch = judge_signature(peer);
    if (!mismatch.empty()) {
      return {std::make_exception_ptr(TransportError(ErrorKind::kMismatch, mismatch, peer)), peer};
    }
  }
  return {nullptr, -1};
}

std::pair<std::exception_ptr, int> Exchange::explain_failure(std::exception_ptr cause, int peer) {
  if (signature_recvs_.empty()) return {std::move(cause), peer};
  const ErrorKind kind = kind_of(cause);
  if (kind == ErrorKind::kMismatch) return {std::move(cause), peer};
  // A mismatched peer's data may be the wrong length, or canceled when that peer failed first;
  // its signature is then on its way: give it a moment.
  int blamed = peer;
  try {
    std::rethrow_exception(cause);
  } catch (const TransportError& error) {
    if (error.peer() >= 0) blamed = error.peer();
  } catch (...) {
  }
  const bool mismatch_likely = kind == ErrorKind::kSizeMismatch || kind == ErrorKind::kCanceled;
  if (mismatch_likely && blamed >= 0 && blamed < size_ && blamed != rank_) {
    const Handle& signature = signature_recvs_[static_cast<size_t>(blamed)];
    wait_quietly(signature, std::min(deadline_, Clock::now() + kSignatureGrace));
  }
  auto [mismatch, mismatched_peer] = arrived_mismatch();
  if (mismatch) return {mismatch, mismatched_peer};
  return {std::move(cause), peer};
}

bool Exchange::signatures_agree() {
  if (signatures_unchecked_ > 0) check_signatures();
  return signatures_unchecked_ == 0;
}

void Exchange::finish() {
  for (size_t index = 0; index < signature_recvs_.size(); ++index) {
    if (signature_sends_[index]) wait(signature_sends_[index]);
    if (signature_recvs_[index]) wait(signature_recvs_[index]);
  }
  if (signatures_unchecked_ > 0) check_signatures();
}

}  // namespace torchwan::engine
