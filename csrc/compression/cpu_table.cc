// The kernel table of one instruction set (see cpu_isa_kernels.h).
#include "csrc/compression/cpu_isa_kernels.h"

namespace torchwan::compression::cpu::TORCHWAN_CPU_ISA {

const KernelTable& table() {
  // Top-k has one variant, shared by every table.
  static constexpr KernelTable kTable = {encode_cast,      decode_cast,     encode_block,
                                         decode_block,     encode_sign,     decode_sign,
                                         cpu::encode_topk, cpu::decode_topk};
  return kTable;
}

}  // namespace torchwan::compression::cpu::TORCHWAN_CPU_ISA
