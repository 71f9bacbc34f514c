// torchwan._elastic: the membership client and coordinator for Python (torchrun rendezvous,
// torchwan.elastic). Blocking calls release the GIL: waiting for an epoch may take seconds, and
// the member's own thread never needs Python.
#include <pybind11/chrono.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <chrono>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "elastic/coordinator.h"
#include "elastic/errors.h"
#include "elastic/member.h"
#include "transport/secure/job_secret.h"

namespace py = pybind11;

namespace torchwan::elastic {
namespace {

using std::chrono::milliseconds;

// The Python exception classes, created once at import; the translator below picks one by kind.
struct ExceptionTypes {
  py::object base;
  py::object stopped;
  py::object rejected;
  py::object authentication;
};

ExceptionTypes& exception_types() {
  static ExceptionTypes types;
  return types;
}

void translate_elastic_errors(std::exception_ptr error) {
  try {
    std::rethrow_exception(error);
  } catch (const ElasticError& e) {
    const auto& types = exception_types();
    const py::object* type = &types.base;
    if (e.kind() == ElasticErrorKind::kStopped) type = &types.stopped;
    if (e.kind() == ElasticErrorKind::kRejected) type = &types.rejected;
    if (e.kind() == ElasticErrorKind::kAuthentication) type = &types.authentication;
    if (e.kind() == ElasticErrorKind::kInvalidArgument) {
      PyErr_SetString(PyExc_ValueError, e.what());
      return;
    }
    PyErr_SetString(type->ptr(), e.what());
  }
}

std::unique_ptr<Member> make_member(std::string coordinator, std::string job_id, std::string name,
                                    std::string address, std::string region,
                                    std::vector<std::string> capabilities,
                                    milliseconds heartbeat_interval,
                                    milliseconds coordinator_timeout,
                                    const std::string& secret_file) {
  MemberOptions options;
  if (!secret_file.empty()) options.secret = security::JobSecret::load_file(secret_file);
  options.coordinator = std::move(coordinator);
  options.job_id = std::move(job_id);
  options.name = std::move(name);
  options.address = std::move(address);
  options.region = std::move(region);
  options.capabilities = std::move(capabilities);
  options.heartbeat_interval = heartbeat_interval;
  options.coordinator_timeout = coordinator_timeout;
  return std::make_unique<Member>(std::move(options));
}

std::unique_ptr<Coordinator> make_coordinator(std::string host, int port, std::string job_id,
                                              milliseconds heartbeat_timeout,
                                              milliseconds peer_lost_silence,
                                              milliseconds recovery_grace, size_t min_members,
                                              bool require_majority, const std::string& secret_file,
                                              bool standby) {
  CoordinatorOptions options;
  if (!secret_file.empty()) options.secret = security::JobSecret::load_file(secret_file);
  options.host = std::move(host);
  options.port = port;
  options.job_id = std::move(job_id);
  options.heartbeat_timeout = heartbeat_timeout;
  options.peer_lost_silence = peer_lost_silence;
  options.recovery_grace = recovery_grace;
  options.min_members = min_members;
  options.require_majority = require_majority;
  options.standby = standby;
  return std::make_unique<Coordinator>(std::move(options));
}

py::dict snapshot_dict(const CoordinatorSnapshot& snapshot) {
  py::dict result;
  result["phase"] = coordinator_phase_name(snapshot.phase);
  result["epoch"] = snapshot.epoch;
  result["members"] = snapshot.members;
  result["waiting"] = snapshot.waiting;
  result["rejected_frames"] = snapshot.rejected_frames;
  return result;
}

void bind_types(py::module_& module) {
  py::enum_<MemberState>(module, "MemberState")
      .value("WAITING", MemberState::kWaiting)
      .value("ACTIVE", MemberState::kActive)
      .value("RECOVERING", MemberState::kRecovering)
      .value("STOPPED", MemberState::kStopped);

  py::class_<MemberInfo>(module, "MemberInfo")
      .def_readonly("name", &MemberInfo::name)
      .def_readonly("address", &MemberInfo::address)
      .def_readonly("region", &MemberInfo::region)
      .def_readonly("capabilities", &MemberInfo::capabilities)
      .def("__repr__", [](const MemberInfo& info) {
        return "MemberInfo(name='" + info.name + "', address='" + info.address + "', region='" +
               info.region + "')";
      });

  py::class_<EpochView>(module, "EpochView")
      .def_readonly("epoch", &EpochView::epoch)
      .def_readonly("members", &EpochView::members)
      .def_readonly("rank", &EpochView::rank)
      .def_readonly("num_waiting", &EpochView::num_waiting)
      .def_property_readonly("world_size", &EpochView::world_size)
      .def("__repr__", [](const EpochView& view) {
        return "EpochView(epoch=" + std::to_string(view.epoch) +
               ", world_size=" + std::to_string(view.world_size()) +
               ", rank=" + std::to_string(view.rank) + ")";
      });
}

void bind_member(py::module_& module) {
  py::class_<Member>(module, "Member")
      .def(py::init(&make_member), py::arg("coordinator"), py::arg("job_id"), py::arg("name"),
           py::arg("address"), py::arg("region") = "",
           py::arg("capabilities") = std::vector<std::string>{},
           py::arg("heartbeat_interval") = milliseconds(1000),
           py::arg("coordinator_timeout") = milliseconds(10000), py::arg("secret_file") = "")
      .def_property_readonly("name", &Member::name)
      .def_property_readonly("incarnation", &Member::incarnation)
      .def("current", &Member::current)
      .def("state", &Member::state)
      .def("num_waiting", &Member::num_waiting)
      .def("wait_for_epoch", &Member::wait_for_epoch, py::arg("newer_than"), py::arg("timeout"),
           py::call_guard<py::gil_scoped_release>())
      .def("report_peer_lost", &Member::report_peer_lost, py::arg("peer"), py::arg("reason"))
      .def("request_new_epoch", &Member::request_new_epoch)
      .def("leave", &Member::leave, py::arg("timeout") = milliseconds(2000),
           py::call_guard<py::gil_scoped_release>())
      .def("close", &Member::close, py::call_guard<py::gil_scoped_release>());
}

void bind_coordinator(py::module_& module) {
  py::class_<Coordinator>(module, "Coordinator")
      .def(py::init(&make_coordinator), py::arg("host") = "127.0.0.1", py::arg("port") = 0,
           py::arg("job_id") = "", py::arg("heartbeat_timeout") = milliseconds(10000),
           py::arg("peer_lost_silence") = milliseconds(1500),
           py::arg("recovery_grace") = milliseconds(10000), py::arg("min_members") = 1,
           py::arg("require_majority") = true, py::arg("secret_file") = "",
           py::arg("standby") = false)
      .def("start", &Coordinator::start, py::call_guard<py::gil_scoped_release>())
      .def("stop", &Coordinator::stop, py::call_guard<py::gil_scoped_release>())
      .def_property_readonly("running", &Coordinator::running)
      .def_property_readonly("port", &Coordinator::port)
      .def_property_readonly("endpoint", &Coordinator::endpoint)
      .def("snapshot", [](const Coordinator& self) { return snapshot_dict(self.snapshot()); })
      .def_property_readonly("refused_connections", &Coordinator::refused_connections);
}

void bind_secret(py::module_& module) {
  module.def(
      "create_secret",
      [](const std::string& path) { return security::JobSecret::create_file(path).fingerprint(); },
      py::arg("path"),
      "Writes a new job secret to `path` (mode 0600, never overwriting); returns its fingerprint.");
  module.def(
      "secret_fingerprint",
      [](const std::string& path) { return security::JobSecret::load_file(path).fingerprint(); },
      py::arg("path"), "The fingerprint (safe to log) of the job secret in `path`.");
}

}  // namespace
}  // namespace torchwan::elastic

PYBIND11_MODULE(_elastic, module) {
  namespace elastic = torchwan::elastic;
  module.doc() = "torchwan membership layer: coordinator and member client (torch-free)";
  auto& types = elastic::exception_types();
  types.base = py::exception<elastic::ElasticError>(module, "ElasticError", PyExc_RuntimeError);
  types.stopped = py::exception<elastic::ElasticError>(module, "JobStoppedError", types.base);
  types.rejected = py::exception<elastic::ElasticError>(module, "RejectedError", types.base);
  types.authentication =
      py::exception<elastic::ElasticError>(module, "AuthenticationError", types.base);
  py::register_exception_translator(&elastic::translate_elastic_errors);
  elastic::bind_types(module);
  elastic::bind_member(module);
  elastic::bind_coordinator(module);
  elastic::bind_secret(module);
}
