// Owning wrappers for the UCX handles whose release is synchronous (config, context, worker), and
// the status check every UCX call goes through. Endpoints are not here: closing one is an
// asynchronous operation that the engine drives and waits for.
#pragma once

#include <ucp/api/ucp.h>

#include <memory>
#include <string>

#include "base/file_descriptor.h"
#include "transport/errors.h"

namespace torchwan::transport::ucx {

struct ConfigRelease {
  void operator()(ucp_config_t* config) const { ucp_config_release(config); }
};
struct ContextCleanup {
  void operator()(ucp_context* context) const { ucp_cleanup(context); }
};
struct WorkerDestroy {
  void operator()(ucp_worker* worker) const { ucp_worker_destroy(worker); }
};

using ConfigPtr = std::unique_ptr<ucp_config_t, ConfigRelease>;
using ContextPtr = std::unique_ptr<ucp_context, ContextCleanup>;
using WorkerPtr = std::unique_ptr<ucp_worker, WorkerDestroy>;

// The progress thread's epoll set.
using FileDescriptor = base::FileDescriptor;

// Throws TransportError(kind) saying which call failed and why when `status` is not UCS_OK.
inline void check_ucs(ucs_status_t status, const std::string& what,
                      ErrorKind kind = ErrorKind::kInternal) {
  if (status != UCS_OK) {
    throw TransportError(kind, "ucx: " + what + " failed: " + ucs_status_string(status));
  }
}

}  // namespace torchwan::transport::ucx
