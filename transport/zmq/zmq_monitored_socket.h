// A ZMQ socket together with the PAIR socket its monitor events arrive on.
//
// ZMQ's I/O thread writes monitor events with a blocking send into an inproc PAIR. Once our end of
// that PAIR is gone, the next event (a disconnect while the socket closes, say) blocks the I/O
// thread, and with it every socket of the context, for good. So the monitor must be stopped before
// either socket closes; close() and the destructor do that.
#pragma once

#include <optional>
#include <string>
#include <zmq.hpp>

#include "transport/zmq/zmq_sockets.h"

namespace torchwan::transport::zmq_detail {

class MonitoredSocket {
 public:
  MonitoredSocket() = default;
  MonitoredSocket(::zmq::context_t& context, ::zmq::socket_type type) : socket_(context, type) {}
  ~MonitoredSocket() { close(); }
  MonitoredSocket(MonitoredSocket&& other) noexcept = default;
  MonitoredSocket& operator=(MonitoredSocket&& other) noexcept;
  MonitoredSocket(const MonitoredSocket&) = delete;
  MonitoredSocket& operator=(const MonitoredSocket&) = delete;

  // Starts reporting `events`; `name` must be unique within `context`. Call before the socket
  // binds or connects, so no event is missed.
  void start_monitor(::zmq::context_t& context, const std::string& name, int events);
  // The next event, or nothing when none is waiting (never blocks).
  std::optional<MonitorEvent> next_event();
  void close();

  ::zmq::socket_t& socket() { return socket_; }
  ::zmq::socket_t& monitor() { return monitor_; }
  explicit operator bool() const { return static_cast<bool>(socket_); }

 private:
  ::zmq::socket_t socket_;
  ::zmq::socket_t monitor_;
};

}  // namespace torchwan::transport::zmq_detail
