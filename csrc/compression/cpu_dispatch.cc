// Picks the codec loops for the CPU this runs on.
#include "csrc/compression/cpu_kernels.h"

namespace torchwan::compression::cpu {

const KernelTable& kernels() {
#if defined(TORCHWAN_COMPRESSION_HAVE_AVX2)
  // Reads the CPU model libgcc recorded at startup: cheap enough to ask on every call.
  if (__builtin_cpu_supports("avx2")) return avx2::table();
#endif
  return baseline::table();
}

std::vector<const KernelTable*> runnable_kernels() {
  std::vector<const KernelTable*> tables = {&baseline::table()};
#if defined(TORCHWAN_COMPRESSION_HAVE_AVX2)
  if (__builtin_cpu_supports("avx2")) tables.push_back(&avx2::table());
#endif
  return tables;
}

}  // namespace torchwan::compression::cpu
