#include "transport/zmq/zmq_monitored_socket.h"

#include <utility>

namespace torchwan::transport::zmq_detail {

MonitoredSocket& MonitoredSocket::operator=(MonitoredSocket&& other) noexcept {
  if (this != &other) {
    close();
    socket_ = std::move(other.socket_);
    monitor_ = std::move(other.monitor_);
  }
  return *this;
}

void MonitoredSocket::start_monitor(::zmq::context_t& context, const std::string& name,
                                    int events) {
  monitor_ = attach_monitor(context, socket_, name, events);
}

std::optional<MonitorEvent> MonitoredSocket::next_event() {
  if (!monitor_) return std::nullopt;
  return read_monitor_event(monitor_);
}

void MonitoredSocket::close() {
  // Stopping the monitor first (it takes the lock the I/O thread holds while it writes an event)
  // guarantees that no event is written once our PAIR is gone.
  if (socket_ && monitor_) zmq_socket_monitor(socket_.handle(), nullptr, 0);
  socket_.close();
  monitor_.close();
}

}  // namespace torchwan::transport::zmq_detail
