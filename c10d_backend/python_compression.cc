// torchwan._C.compression: the gradient codecs of csrc/compression on CPU torch tensors, and the
// compressed allreduce torchwan.hooks queues on a wan backend. The codec reads and writes the
// tensors' own memory (no copies), and runs without the GIL so a hook on one thread does not stall
// Python threads elsewhere. Malformed payloads and invalid parameters raise
// ValueError carrying the library's message, which names the field at fault.
#include <ATen/ATen.h>
#include <pybind11/pybind11.h>
#include <torch/csrc/jit/python/pybind_utils.h>
#include <torch/csrc/utils/pybind.h>

#include <cstddef>
#include <cstdint>
#include <optional>
#include <span>
#include <string>

#include "c10d_backend/compressed_allreduce.h"
#include "c10d_backend/process_group_wan.h"
#include "csrc/compressed_allreduce.h"
#include "csrc/compression/codec.h"
#include "csrc/compression/codec_table.h"

namespace py = pybind11;

namespace torchwan {
namespace {

namespace tc = torchwan::compression;

tc::Codec parse_codec(const std::string& name) {
  const tc::CodecDescriptor* descriptor = tc::find_codec(name);
  if (descriptor == nullptr) {
    throw py::value_error("torchwan compression: unknown codec '" + name + "' (expected " +
                          tc::codec_names() + ")");
  }
  return descriptor->codec;
}

tc::CodecConfig make_config(const std::string& codec, uint32_t block_size, double topk_fraction,
                            bool stochastic_rounding, uint64_t seed) {
  tc::CodecConfig config;
  config.codec = parse_codec(codec);
  // Codecs without blocks ignore the size: a caller passing one default for every codec should
  // not have to zero it for them.
  config.block_size = tc::describe(config.codec).blocked() ? block_size : 0;
  config.topk_fraction = topk_fraction;
  config.stochastic_rounding = stochastic_rounding;
  config.seed = seed;
  return config;
}

// Tensors are used in place, so they must be plain dense CPU memory of the expected type.
void check_tensor(const at::Tensor& tensor, at::ScalarType type, const char* role) {
  if (!tensor.device().is_cpu()) {
    throw py::type_error(std::string("torchwan compression: ") + role +
                         " must be a CPU tensor (move CUDA tensors to the CPU first)");
  }
  if (tensor.scalar_type() != type) {
    throw py::type_error(std::string("torchwan compression: ") + role + " must be " +
                         c10::toString(type) + ", got " + c10::toString(tensor.scalar_type()));
  }
  if (!tensor.is_contiguous()) {
    throw py::value_error(std::string("torchwan compression: ") + role + " must be contiguous");
  }
}

std::span<const float> floats(const at::Tensor& tensor) {
  return {tensor.data_ptr<float>(), static_cast<size_t>(tensor.numel())};
}

std::span<float> mutable_floats(at::Tensor& tensor) {
  return {tensor.data_ptr<float>(), static_cast<size_t>(tensor.numel())};
}

std::span<const uint8_t> bytes(const at::Tensor& tensor) {
  return {tensor.data_ptr<uint8_t>(), static_cast<size_t>(tensor.numel())};
}

// The output buffer for an encode: `out` when given (at least `size` bytes), else a new one.
at::Tensor output_bytes(const std::optional<at::Tensor>& out, size_t size) {
  if (!out) return at::empty({static_cast<int64_t>(size)}, at::kByte);
  check_tensor(*out, at::kByte, "out");
  if (static_cast<size_t>(out->numel()) < size) {
    throw py::value_error("torchwan compression: out holds " + std::to_string(out->numel()) +
                          " bytes, the payload needs " + std::to_string(size));
  }
  return out->view({-1});
}

// Runs `work` without the GIL and turns the library's errors into ValueError once it is back.
template <typename Work>
auto run_codec(Work&& work) {
  try {
    py::gil_scoped_release no_gil;
    return work();
  } catch (const tc::CompressionError& error) {
    throw py::value_error(error.what());
  }
}

at::Tensor encode(const at::Tensor& input, const std::string& codec, uint32_t block_size,
                  double topk_fraction, bool stochastic_rounding, uint64_t seed,
                  const std::optional<at::Tensor>& out) {
  check_tensor(input, at::kFloat, "input");
  const auto config = make_config(codec, block_size, topk_fraction, stochastic_rounding, seed);
  const size_t size = run_codec([&] { return tc::encoded_size(config, input.numel()); });
  at::Tensor output = output_bytes(out, size);
  const size_t written = run_codec([&] {
    return tc::encode(config, floats(input), {output.data_ptr<uint8_t>(), size});
  });
  return output.narrow(0, 0, static_cast<int64_t>(written));
}

at::Tensor encode_with_error_feedback(const at::Tensor& input, at::Tensor& residual,
                                      const std::string& codec, uint32_t block_size,
                                      double topk_fraction, bool stochastic_rounding, uint64_t seed,
                                      const std::optional<at::Tensor>& out) {
  check_tensor(input, at::kFloat, "input");
  check_tensor(residual, at::kFloat, "residual");
  if (residual.numel() != input.numel()) {
    throw py::value_error("torchwan compression: residual has " + std::to_string(residual.numel()) +
                          " elements, input has " + std::to_string(input.numel()));
  }
  const auto config = make_config(codec, block_size, topk_fraction, stochastic_rounding, seed);
  const size_t size = run_codec([&] { return tc::encoded_size(config, input.numel()); });
  at::Tensor output = output_bytes(out, size);
  const size_t written = run_codec([&] {
    return tc::encode_with_error_feedback(config, floats(input), mutable_floats(residual),
                                          {output.data_ptr<uint8_t>(), size});
  });
  return output.narrow(0, 0, static_cast<int64_t>(written));
}

at::Tensor decode(const at::Tensor& payload, const std::optional<at::Tensor>& out) {
  check_tensor(payload, at::kByte, "payload");
  const tc::Header header = run_codec([&] { return tc::inspect(bytes(payload)); });
  at::Tensor output;
  if (out) {
    check_tensor(*out, at::kFloat, "out");
    output = *out;
  } else {
    output = at::empty({static_cast<int64_t>(header.element_count)}, at::kFloat);
  }
  run_codec([&] { tc::decode(bytes(payload), mutable_floats(output)); });
  return output;
}

void decode_accumulate(const at::Tensor& payload, at::Tensor& accumulator) {
  check_tensor(payload, at::kByte, "payload");
  check_tensor(accumulator, at::kFloat, "accumulator");
  run_codec([&] { tc::decode_accumulate(bytes(payload), mutable_floats(accumulator)); });
}

py::dict inspect(const at::Tensor& payload) {
  check_tensor(payload, at::kByte, "payload");
  const tc::Header header = run_codec([&] { return tc::inspect(bytes(payload)); });
  py::dict fields;
  fields["codec"] = tc::codec_name(header.codec);
  fields["stochastic_rounding"] = (header.flags & tc::kFlagStochastic) != 0;
  fields["block_size"] = header.block_size;
  fields["element_count"] = header.element_count;
  fields["aux"] = header.aux;
  fields["payload_length"] = header.payload_length;
  return fields;
}

size_t encoded_size(int64_t element_count, const std::string& codec, uint32_t block_size,
                    double topk_fraction, bool stochastic_rounding) {
  if (element_count < 0) throw py::value_error("torchwan compression: negative element count");
  const auto config = make_config(codec, block_size, topk_fraction, stochastic_rounding, 0);
  return run_codec([&] { return tc::encoded_size(config, static_cast<size_t>(element_count)); });
}

// The hook's compressed allreduce on `backend`: queued at once, its future completed by the
// backend's Work when the collective thread has run it (SUM, or AVG with `average`).
std::shared_ptr<torch::jit::PythonFutureWrapper> allreduce(
    ProcessGroupWan& backend, at::Tensor& tensor, const std::optional<at::Tensor>& contribution,
    const std::optional<at::Tensor>& reduction, const std::string& codec, uint32_t block_size,
    double topk_fraction, bool stochastic_rounding, uint64_t seed, bool average) {
  if (contribution.has_value() != reduction.has_value()) {
    throw py::value_error(
        "torchwan compression: pass both error-feedback residuals (contribution and reduction) "
        "or neither");
  }
  const auto config = make_config(codec, block_size, topk_fraction, stochastic_rounding, seed);
  std::optional<c10d_backend::Residuals> residuals;
  if (contribution) residuals = c10d_backend::Residuals{*contribution, *reduction};
  c10::intrusive_ptr<c10d::Work> work;
  {
    py::gil_scoped_release no_gil;
    work = backend.compressed_allreduce(tensor, config,
                                        average ? c10d::ReduceOp::AVG : c10d::ReduceOp::SUM,
                                        residuals ? &*residuals : nullptr);
  }
  return std::make_shared<torch::jit::PythonFutureWrapper>(work->getFuture());
}

size_t allreduce_bytes_sent(int64_t element_count, int size, int rank, const std::string& codec,
                            uint32_t block_size, double topk_fraction) {
  if (element_count < 0) throw py::value_error("torchwan compression: negative element count");
  const auto config = make_config(codec, block_size, topk_fraction, false, 0);
  return run_codec([&] {
    return engine::compressed_allreduce_bytes_sent(static_cast<size_t>(element_count), size, rank,
                                                   config);
  });
}

}  // namespace

void register_compression_bindings(py::module& parent) {
  py::module module = parent.def_submodule(
      "compression", "Gradient codecs on CPU float32 tensors (see docs/compression.md)");
  py::list names;
  py::list table;
  for (const tc::CodecDescriptor* row = tc::codec_table_begin(); row != tc::codec_table_end();
       ++row) {
    names.append(row->name);
    py::dict entry;
    entry["name"] = row->name;
    entry["alias"] = row->alias != nullptr ? py::object(py::str(row->alias)) : py::none();
    entry["wire_id"] = static_cast<int>(row->codec);
    entry["needs_error_feedback"] = row->needs_error_feedback;
    entry["blocked"] = row->blocked();
    entry["stochastic_rounding"] = row->stochastic_rounding;
    entry["cuda"] = row->cuda != nullptr;
    entry["description"] = row->description;
    table.append(entry);
  }
  module.attr("codecs") = py::tuple(names);
  // The codec table (csrc/compression/codec_table.cc), one dict per codec in wire-id order.
  module.attr("codec_table") = py::tuple(table);
  module.attr("header_size") = tc::kHeaderSize;
  // Whether allreduce() encodes CUDA tensors on the GPU (their residuals then live there too).
  module.attr("device_codecs") = c10d_backend::device_codecs_built();
  module.def("encoded_size", &encoded_size, py::arg("element_count"), py::arg("codec") = "int8",
             py::arg("block_size") = 0, py::arg("topk_fraction") = 0.01,
             py::arg("stochastic_rounding") = false,
             "Exact size in bytes of the payload encode writes for element_count elements.");
  module.def("encode", &encode, py::arg("input"), py::arg("codec") = "int8",
             py::arg("block_size") = 0, py::arg("topk_fraction") = 0.01,
             py::arg("stochastic_rounding") = false, py::arg("seed") = 0,
             py::arg("out") = py::none(),
             "Encodes a float32 tensor; returns the uint8 payload (a view of out when given).");
  module.def("encode_with_error_feedback", &encode_with_error_feedback, py::arg("input"),
             py::arg("residual"), py::arg("codec") = "int8", py::arg("block_size") = 0,
             py::arg("topk_fraction") = 0.01, py::arg("stochastic_rounding") = false,
             py::arg("seed") = 0, py::arg("out") = py::none(),
             "Encodes input + residual and sets residual to what decoding loses (in place).");
  module.def("decode", &decode, py::arg("payload"), py::arg("out") = py::none(),
             "Decodes a payload into out (float32, its element count) or a new tensor.");
  module.def("decode_accumulate", &decode_accumulate, py::arg("payload"), py::arg("accumulator"),
             "accumulator += decode(payload), in place.");
  module.def(
      "allreduce", &allreduce, py::arg("backend"), py::arg("tensor"),
      py::arg("contribution_residual") = py::none(), py::arg("reduction_residual") = py::none(),
      py::arg("codec") = "int8", py::arg("block_size") = 0, py::arg("topk_fraction") = 0.01,
      py::arg("stochastic_rounding") = false, py::arg("seed") = 0, py::arg("average") = false,
      "Compressed allreduce of tensor in place on a wan backend, with optional "
      "error-feedback residuals; returns the backend's future.");
  module.def("allreduce_bytes_sent", &allreduce_bytes_sent, py::arg("element_count"),
             py::arg("size"), py::arg("rank"), py::arg("codec") = "int8", py::arg("block_size") = 0,
             py::arg("topk_fraction") = 0.01,
             "Payload bytes one rank sends for one compressed allreduce of element_count floats.");
  module.def("inspect", &inspect, py::arg("payload"),
             "Validates a payload's header and returns its fields as a dict.");
}

}  // namespace torchwan
