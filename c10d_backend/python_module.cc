// The torchwan._C extension: the ProcessGroupWan class as a subclass of torch's Backend binding.
#include <pybind11/chrono.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>
#include <torch/csrc/utils/pybind.h>
#include <torch/version.h>

#include <map>
#include <optional>
#include <string>

#include "base/option_registry.h"
#include "c10d_backend/device_resources.h"
#include "c10d_backend/errors.h"
#include "c10d_backend/process_group_wan.h"
#include "csrc/algorithm_table.h"
#include "csrc/cost_model.h"

namespace py = pybind11;

namespace torchwan {
namespace {

// Holds the backend for Python and drops the GIL while it is destroyed: the destructor joins
// threads that may be completing futures whose Python callbacks need the GIL. Its only member is
// an intrusive_ptr, the layout torch's casters expect of every Backend holder.
template <typename T>
class NoGilDestructorPtr {
 public:
  NoGilDestructorPtr() = default;
  explicit NoGilDestructorPtr(T* raw)
      : ptr_(c10::intrusive_ptr<T>::unsafe_reclaim_from_nonowning(raw)) {}
  explicit NoGilDestructorPtr(c10::intrusive_ptr<T> ptr) : ptr_(std::move(ptr)) {}
  NoGilDestructorPtr(const NoGilDestructorPtr&) = default;
  NoGilDestructorPtr& operator=(const NoGilDestructorPtr&) = default;
  ~NoGilDestructorPtr() {
    if (PyGILState_Check() != 0) {
      py::gil_scoped_release no_gil;
      ptr_.reset();
    } else {
      ptr_.reset();
    }
  }
  T* get() const { return ptr_.get(); }

 private:
  c10::intrusive_ptr<T> ptr_;
};

WanOptions make_options(const std::map<std::string, std::string>& fields,
                        std::chrono::milliseconds timeout, const std::string& group_name) {
  WanOptions options;
  try {
    // Each option goes to the layer the registry names as its parser.
    for (const auto& [name, value] : fields) {
      const base::OptionSpec* spec = base::find_option(name);
      if (spec == nullptr) {
        throw std::invalid_argument("unknown option '" + name + "'");
      } else if (spec->layer == "topology") {
        options.topology.set(name, value);
      } else if (name == "compression") {
        options.compression = engine::AllreduceCompression::parse(value);
      } else if (name == "algorithm") {
        options.algorithms = engine::AlgorithmOverrides::parse(value);
      } else if (name == "scratch_cache_bytes") {
        options.scratch_cache_bytes = engine::ScratchPool::parse_max_cached_bytes(value);
      } else {
        options.transport.set(name, value);
      }
    }
    options.transport.validate();
  } catch (const std::invalid_argument& error) {
    throw py::value_error(std::string("torchwan.Options: ") + error.what());
  }
  options.timeout = timeout;
  options.group_name = group_name;
  return options;
}

// The option registry for Python: torchwan.Options and the README's table are built from it.
py::list option_registry() {
  py::list options;
  for (const base::OptionSpec& spec : base::option_registry()) {
    py::dict entry;
    entry["name"] = std::string(spec.name);
    entry["layer"] = std::string(spec.layer);
    entry["type"] = std::string(spec.type);
    entry["default"] = std::string(spec.default_value);
    entry["default_shown"] = std::string(spec.default_shown);
    entry["doc"] = std::string(spec.doc);
    entry["env"] = base::option_env_variable(spec.name);
    options.append(entry);
  }
  return options;
}

// Raises the torchwan.errors class named `name` (all subclass DistBackendError) with the message
// of `error`, without the C++ backtrace, and the rank it blames as `peer` (None for no rank).
void raise_python(const char* name, const WanError& error) {
  const py::object type = py::module::import("torchwan.errors").attr(name);
  const py::object instance = type(error.what_without_backtrace());
  instance.attr("peer") = error.peer() >= 0 ? py::object(py::int_(error.peer())) : py::none();
  PyErr_SetObject(type.ptr(), instance.ptr());
}

// Most specific class first: every one of them is also a WanError.
void translate_wan_errors(std::exception_ptr error) {
  try {
    std::rethrow_exception(error);
  } catch (const WanTimeoutError& e) {
    raise_python("WanTimeoutError", e);
  } catch (const WanPeerLostError& e) {
    raise_python("WanPeerLostError", e);
  } catch (const WanMismatchError& e) {
    raise_python("WanMismatchError", e);
  } catch (const WanAbortedError& e) {
    raise_python("WanAbortedError", e);
  } catch (const WanError& e) {
    raise_python("WanError", e);
  }
}

}  // namespace

void register_compression_bindings(py::module& parent);  // python_compression.cc
c10d_backend::LocalTierFactory python_local_tier_factory(
    py::function function);  // python_local_tier.cc

}  // namespace torchwan

PYBIND11_DECLARE_HOLDER_TYPE(T, torchwan::NoGilDestructorPtr<T>, true)

PYBIND11_MODULE(_C, module) {
  using torchwan::NoGilDestructorPtr;
  using torchwan::ProcessGroupWan;
  module.doc() = "torchwan native extension: the 'wan' c10d backend";
  // Registers torch's Store and Backend types with pybind11 before we derive from them.
  py::module::import("torch.distributed");
  auto backend_base = py::module::import("torch._C._distributed_c10d").attr("Backend");

  module.attr("built_for_torch") =
      std::to_string(TORCH_VERSION_MAJOR) + "." + std::to_string(TORCH_VERSION_MINOR);
  module.attr("built_with_cuda") = torchwan::c10d_backend::built_with_cuda();
  // Tried before torch's own translator, which would turn these into plain DistBackendError.
  py::register_exception_translator(&torchwan::translate_wan_errors);
  module.attr("transport_option_names") = torchwan::transport::TransportOptions::field_names();
  module.def("option_registry", &torchwan::option_registry);
  torchwan::register_compression_bindings(module);

  py::class_<ProcessGroupWan, NoGilDestructorPtr<ProcessGroupWan>>(module, "ProcessGroupWan",
                                                                   backend_base)
      .def(py::init([](const c10::intrusive_ptr<c10d::Store>& store, int rank, int size,
                       std::chrono::milliseconds timeout,
                       const std::map<std::string, std::string>& transport_fields,
                       const std::string& group_name) {
             auto options = torchwan::make_options(transport_fields, timeout, group_name);
             py::gil_scoped_release no_gil;  // connecting blocks until every rank arrives
             return NoGilDestructorPtr<ProcessGroupWan>(
                 c10::make_intrusive<ProcessGroupWan>(store, rank, size, std::move(options)));
           }),
           py::arg("store"), py::arg("rank"), py::arg("size"), py::arg("timeout"),
           py::arg("transport_options") = std::map<std::string, std::string>{},
           py::arg("group_name") = "")
      // A group over processes `parent` is connected to, sharing its transport device;
      // device_ranks are the group's ranks in parent's device (for torch's groups, their global
      // ranks, WORLD being the parent).
      .def(py::init([](const ProcessGroupWan& parent, const c10::intrusive_ptr<c10d::Store>& store,
                       int rank, int size, const std::vector<int>& device_ranks,
                       std::chrono::milliseconds timeout,
                       const std::map<std::string, std::string>& transport_fields,
                       const std::string& group_name) {
             auto options = torchwan::make_options(transport_fields, timeout, group_name);
             py::gil_scoped_release no_gil;  // waits for the group's rank 0 to pick its channel
             return NoGilDestructorPtr<ProcessGroupWan>(c10::make_intrusive<ProcessGroupWan>(
                 &parent, store, rank, size, device_ranks, std::move(options)));
           }),
           py::arg("parent"), py::arg("store"), py::arg("rank"), py::arg("size"),
           py::arg("device_ranks"), py::arg("timeout"),
           py::arg("transport_options") = std::map<std::string, std::string>{},
           py::arg("group_name") = "")
      .def_property_readonly("shares_device", &ProcessGroupWan::shares_device)
      .def_property_readonly(
          "transport",
          [](const ProcessGroupWan& self) { return self.options().transport.transport; })
      .def_property_readonly(
          "lanes", [](const ProcessGroupWan& self) { return self.options().transport.lanes; })
      .def_property_readonly(
          "compression",
          [](const ProcessGroupWan& self) { return self.options().compression.name(); })
      // The regions chosen at group creation: the region index of every rank (regions numbered
      // by their lowest rank), how they were found ("flat", "labels", "rtt") and, for "rtt", the
      // measured size x size round-trip times in ms.
      .def_property_readonly(
          "regions",
          [](const ProcessGroupWan& self) { return self.group_topology().topology.region_of; })
      // The NCCL host tier: `factory(host, local_rank, local_size, device_index, required)` returns
      // the host's ProcessGroupNCCL or None (keep the host-memory tier); called once, on the first
      // CUDA allreduce that takes the host tier with local_backend nccl or auto.
      .def("_set_local_tier_factory",
           [](ProcessGroupWan& self, py::function factory) {
             auto made = torchwan::python_local_tier_factory(std::move(factory));
             // The tier's lock is held while the factory runs, which takes the GIL.
             py::gil_scoped_release no_gil;
             self.set_local_tier_factory(std::move(made));
           })
      // "not created", "nccl" or "host memory": whether the NCCL host tier was made.
      .def_property_readonly(
          "local_tier",
          [](const ProcessGroupWan& self) {
            py::gil_scoped_release no_gil;  // as above: never wait for the tier's lock holding it
            return self.local_tier_state();
          })
      // Which tier would carry the steps inside a host for an allreduce on `device` ("cpu" or
      // "cuda") of `numel` elements of `dtype` with `op`: "none" (no host tier), "host memory"
      // or "nccl" (if the NCCL group can be had). Creates nothing.
      .def(
          "local_tier_for",
          [](const ProcessGroupWan& self, const std::string& device, at::ScalarType dtype,
             int64_t numel, const c10d::ReduceOp& op) {
            TORCH_CHECK_VALUE(device == "cpu" || device == "cuda",
                              "torchwan local_tier_for: device must be 'cpu' or 'cuda', got '",
                              device, "'");
            return std::string(torchwan::c10d_backend::local_tier_name(
                self.local_tier_for(device == "cuda", dtype, numel, op)));
          },
          py::arg("device"), py::arg("dtype"), py::arg("numel"),
          py::arg("op") = c10d::ReduceOp(c10d::ReduceOp::SUM))
      .def_property_readonly(
          "topology_source",
          [](const ProcessGroupWan& self) { return self.group_topology().source; })
      // Counters for torchwan.stats(): per peer rank and per collective.
      .def("stats",
           [](const ProcessGroupWan& self) {
             py::dict peers;
             const auto traffic = self.traffic();
             const auto links = self.links();
             for (size_t peer = 0; peer < traffic.size(); ++peer) {
               if (static_cast<int>(peer) == self.getRank()) continue;
               py::dict entry;
               entry["bytes_sent"] = traffic[peer].bytes_sent;
               entry["bytes_received"] = traffic[peer].bytes_received;
               entry["messages_sent"] = traffic[peer].messages_sent;
               entry["messages_received"] = traffic[peer].messages_received;
               entry["link"] = torchwan::transport::link_rung_name(
                   peer < links.size() ? links[peer] : torchwan::transport::LinkRung::kDirect);
               entry["lanes"] = self.options().transport.lanes;
               peers[py::int_(peer)] = entry;
             }
             py::dict collectives;
             uint64_t pcie_bytes = 0;
             for (const auto& [name, counts] : self.collective_counts()) {
               pcie_bytes += counts.pcie_bytes;
               py::dict entry;
               entry["calls"] = counts.calls;
               entry["failures"] = counts.failures;
               entry["bytes"] = counts.bytes;
               entry["pcie_bytes"] = counts.pcie_bytes;
               entry["seconds"] = counts.seconds;
               collectives[py::str(name)] = entry;
             }
             py::dict result;
             result["rank"] = self.getRank();
             result["world_size"] = self.getSize();
             result["transport"] = self.options().transport.transport;
             result["peers"] = peers;
             result["collectives"] = collectives;
             result["pcie_bytes"] = pcie_bytes;
             return result;
           })
      // The algorithm this group runs `collective` with on `bytes` (the engine's convention: the
      // buffer, or one rank's block for allgather and reduce_scatter) and the cost model's
      // predicted seconds for it, None where the model has no formula: the benchmarks print it
      // beside the measured time. Shared memory is assumed available where every rank is on one
      // host.
      .def("predict",
           [](const ProcessGroupWan& self, const std::string& collective, size_t bytes) {
             namespace engine = torchwan::engine;
             const std::optional<engine::Collective> which = engine::find_collective(collective);
             if (!which) throw py::value_error("predict: unknown collective '" + collective + "'");
             const engine::Topology& topology = self.group_topology().topology;
             const int size = self.getSize();
             const engine::Algorithm algorithm = engine::choose_algorithm(
                 *which, {bytes, size, &topology, topology.one_host()}, &self.options().algorithms);
             const std::optional<double> seconds = engine::predict_seconds(
                 *which, algorithm, bytes, size, engine::link_model(topology.max_rtt_ms));
             return py::make_tuple(std::string(engine::algorithm_name(*which, algorithm)),
                                   seconds ? py::cast(*seconds) : py::none());
           })
      .def_property_readonly("rtt_ms", [](const ProcessGroupWan& self) {
        const auto& group = self.group_topology();
        const size_t size = group.topology.region_of.size();
        std::vector<std::vector<double>> rows;
        for (size_t i = 0; i < size && !group.rtt_ms.empty(); ++i) {
          rows.emplace_back(group.rtt_ms.begin() + static_cast<std::ptrdiff_t>(i * size),
                            group.rtt_ms.begin() + static_cast<std::ptrdiff_t>((i + 1) * size));
        }
        return rows;
      });
}
