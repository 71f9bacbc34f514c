// Exceptions raised by the elastic layer. WireError is what a decoder throws for bytes that are not
// a valid membership message; ElasticError is what the member API throws to its caller.
#pragma once

#include <stdexcept>
#include <string>

namespace torchwan::base {
class MalformedBytes;
}

namespace torchwan::elastic {

// Why a frame was refused. Every rejection path of the decoder has its own kind so that tests (and
// operators reading logs) can tell a foreign sender from a truncated or corrupted message.
enum class WireErrorKind {
  kTruncated,         // shorter than its header, or than the payload length it announces
  kBadMagic,          // not a torchwan membership message at all
  kBadVersion,        // a different protocol version
  kBadType,           // unknown message type
  kWrongJob,          // a valid message for another job
  kOversize,          // payload length above kMaxPayloadBytes
  kLengthMismatch,    // frame longer than header + announced payload
  kBadChecksum,       // payload bytes do not match the header's checksum
  kMalformedPayload,  // payload fields run past the end, or hold impossible values
  kTrailingBytes,     // payload decoded but bytes were left over
};

const char* wire_error_kind_name(WireErrorKind kind);

class WireError : public std::runtime_error {
 public:
  // "<kind name>: <message>".
  WireError(WireErrorKind kind, const std::string& message);
  // A payload field the byte reader refused (base/byte_io.h): kTrailingBytes for bytes left over,
  // else kMalformedPayload; the reader's message, which names the payload, field and offset.
  explicit WireError(const base::MalformedBytes& malformed);
  WireErrorKind kind() const { return kind_; }

 private:
  WireErrorKind kind_;
};

enum class ElasticErrorKind {
  kStopped,   // the coordinator told this job to stop (quorum lost) or the member was closed
  kRejected,  // the coordinator refused this member's registration
  // The connection to the coordinator failed its security handshake: a wrong or missing job
  // secret on one side.
  kAuthentication,
  kInvalidArgument,
};

class ElasticError : public std::runtime_error {
 public:
  ElasticError(ElasticErrorKind kind, const std::string& message)
      : std::runtime_error(message), kind_(kind) {}
  ElasticErrorKind kind() const { return kind_; }

 private:
  ElasticErrorKind kind_;
};

}  // namespace torchwan::elastic
