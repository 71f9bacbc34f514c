// The codec table: one descriptor per codec holds everything the library, the engine and the
// Python layer know about it (its names, wire id, sections, whether it needs error feedback and
// its CPU and CUDA kernels). Adding a codec is one row in codec_table.cc plus its kernels; no
// other file switches on Codec. C++17 (the CUDA files include it).
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "csrc/compression/codec_types.h"
#include "csrc/compression/cpu_kernels.h"
#include "csrc/compression/wire_format.h"

namespace torchwan::compression {

// How a payload lays out its sections after the header (wire_format.h computes the offsets).
enum class Sections : uint8_t {
  kCodes,        // one code of code_bits per element
  kScaledCodes,  // one float scale per block, then one code of code_bits per element
  kSparse,       // aux u32 indices (ascending), then aux float values
};

// The launchers of one codec's CUDA kernels (cuda_kernels.h); only defined when the library was
// built with CUDA.
struct CudaKernels;

struct CodecDescriptor {
  Codec codec;                // wire id
  const char* name;           // what users write: Options(compression=...), torchwan.hooks
  const char* alias;          // an older spelling still accepted (nullptr: none)
  Sections sections;          // what follows the header
  uint32_t code_bits;         // bits per element code (kCodes, kScaledCodes)
  bool needs_error_feedback;  // biased: only useful with residuals (sign, top-k)
  bool stochastic_rounding;   // offers unbiased rounding seeded per call
  bool range_decode;          // decode_accumulate_range can start inside a payload
  // The CPU kernels: members of the table of the instruction set this CPU runs (cpu::kernels()).
  CpuEncode cpu::KernelTable::*cpu_encode;
  CpuDecode cpu::KernelTable::*cpu_decode;
  const CudaKernels* cuda;  // null when built without CUDA
  const char* description;  // one line for documentation and error messages

  bool blocked() const { return sections == Sections::kScaledCodes; }
  // Elements a shard or piece is cut at so codec blocks stay whole: the block size for blocked
  // codecs, 1 for the others (whose elements are independent).
  uint32_t granularity(const CodecConfig& config) const {
    return blocked() ? requested_block_size(config) : 1;
  }
};

// Every codec, in wire-id order.
const CodecDescriptor* codec_table_begin();
const CodecDescriptor* codec_table_end();

// The descriptor of a wire id; throws CompressionError for an id that names no codec.
const CodecDescriptor& describe(Codec codec);
// The descriptor named `name` (its name or its alias), or nullptr.
const CodecDescriptor* find_codec(std::string_view name);
// "fp16, bf16, int8, fp8, sign, topk": the names, in table order, for error messages; with
// `stateless_only`, only the codecs that need no error feedback.
std::string codec_names(bool stateless_only = false);

}  // namespace torchwan::compression
