// One message posted on a transport: what isend, irecv and irecv_any become before they reach an
// implementation, so that a transport, a decorator or a group view overrides one call, post().
#pragma once

#include <cstddef>
#include <optional>

#include "transport/request.h"

namespace torchwan::transport {

struct Posting {
  enum class Kind { kSend, kReceive, kReceiveAny };
  Kind kind = Kind::kSend;
  int peer = kAnySource;  // kAnySource for kReceiveAny
  Tag tag = 0;
  void* data = nullptr;  // only read for a send: one pointer type serves both directions
  size_t length = 0;
  Request::Callback callback;

  bool is_send() const { return kind == Kind::kSend; }
  // The caller's name for it in errors.
  const char* call() const {
    switch (kind) {
      case Kind::kSend:
        return "isend";
      case Kind::kReceive:
        return "irecv";
      case Kind::kReceiveAny:
        return "irecv_any";
    }
    return "post";
  }
  // The peer the caller named; none for an any-source receive.
  std::optional<int> named_peer() const {
    return kind == Kind::kReceiveAny ? std::nullopt : std::optional<int>(peer);
  }
};

}  // namespace torchwan::transport
