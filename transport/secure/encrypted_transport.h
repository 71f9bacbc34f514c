// A Transport that encrypts and authenticates every message it carries, around any other
// Transport (Transport::create wraps UCX or ZeroMQ in it when TransportOptions::encryption is not
// "none"). Each message travels sealed (transport/message_cipher.h): 24 bytes longer, under a
// session key that all ranks of this group derive from the job secret and the fresh nonces of
// their auth records (transport/data_auth.h).
//
// Sends seal into a pooled staging buffer and hand that to the inner transport; receives post the
// inner receive into a staging buffer and, when it completes, authenticate it, check its counter
// was not accepted before, and only then copy the plaintext into the caller's buffer. A message
// that fails either check fails its receive with kProtocol naming the sender, and the caller's
// buffer is left as it was. Requests keep the inner transport's semantics: matching order,
// callbacks, cancel, abort, source() of any-source receives, peer failures.
#pragma once

#include <memory>
#include <optional>
#include <string>

#include "transport/forwarding_transport.h"
#include "transport/secure/encryption.h"

namespace torchwan::transport {

class EncryptedTransport final : public ForwardingTransport {
 public:
  // `inner` has just connected through `store` with encryption set in its options, so every
  // rank's auth record there is present and agrees (DataAuth::collect). Throws TransportError
  // (kInvalidArgument) when the secret cannot be loaded, kBootstrap when the records say otherwise.
  EncryptedTransport(std::unique_ptr<Transport> inner, Store& store);
  ~EncryptedTransport() override;

  std::string name() const override;

  std::shared_ptr<Request> post(Posting posting) override;

  Cipher cipher() const;

 private:
  // What completion callbacks need; shared with them so that a callback that runs while this
  // transport is being destroyed still finds it.
  struct Session;

  // The checks every transport makes, plus the cipher's size limit.
  void check_arguments(const Posting& posting) const;
  std::shared_ptr<Request> send(Posting posting);
  std::shared_ptr<Request> receive(Posting posting);

  std::shared_ptr<Session> session_;
};

}  // namespace torchwan::transport
