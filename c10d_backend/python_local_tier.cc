// The NCCL host tier's factory as a Python callable (torchwan._registration passes one to every
// group): called without the GIL from the thread that issues the allreduce.
#include <c10/util/Exception.h>
#include <pybind11/pybind11.h>
#include <torch/csrc/utils/pybind.h>

#include <memory>
#include <string>

#include "c10d_backend/local_tier.h"

namespace py = pybind11;

namespace torchwan {
namespace {

// Owns the callable; takes the GIL to call and to release it, and leaks it rather than touch a
// finalized interpreter (a group still referenced from C++ statics can die after Python).
class PythonCallable {
 public:
  explicit PythonCallable(py::function function) : function_(std::move(function)) {}
  PythonCallable(const PythonCallable&) = delete;
  PythonCallable& operator=(const PythonCallable&) = delete;
  ~PythonCallable() {
    if (Py_IsInitialized() == 0) {
      function_.release();
      return;
    }
    const py::gil_scoped_acquire gil;
    function_ = py::function();
  }

  c10::intrusive_ptr<c10d::Backend> operator()(const c10d_backend::LocalTierRequest& request) {
    const py::gil_scoped_acquire gil;
    try {
      const py::object made = function_(request.host, request.local_rank, request.local_size,
                                        request.device_index, request.required);
      if (made.is_none()) return {};
      // By raw pointer: torch's Backend binding may hold its objects in another holder type.
      return c10::intrusive_ptr<c10d::Backend>::unsafe_reclaim_from_nonowning(
          made.cast<c10d::Backend*>());
    } catch (py::error_already_set& error) {
      // Rethrown as a C++ error that keeps the message (and a ValueError stays a ValueError):
      // the Python exception object must not outlive the GIL.
      if (error.matches(PyExc_ValueError)) {
        C10_THROW_ERROR(ValueError, py::str(error.value()).cast<std::string>());
      }
      C10_THROW_ERROR(Error,
                      std::string("torchwan: making the NCCL host tier failed: ") + error.what());
    }
  }

 private:
  py::function function_;
};

}  // namespace

c10d_backend::LocalTierFactory python_local_tier_factory(py::function function) {
  auto callable = std::make_shared<PythonCallable>(std::move(function));
  return [callable](const c10d_backend::LocalTierRequest& request) { return (*callable)(request); };
}

}  // namespace torchwan
