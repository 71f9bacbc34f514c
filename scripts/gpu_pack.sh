#!/usr/bin/env bash
# Packs into .device/ (ignored by git) what scripts/gpu_check.sh needs on a GPU machine that has
# torch and nvcc but none of this project's Debian packages and no network. Run it here, after
# scripts/setup.sh; then run scripts/gpu_check.sh there on a copy of the tree that carries
# .device/ (with the device tool: carry [".device"]).
#
#   bin/            the torch-free CUDA executables: compression_cuda_test (the codec kernels
#                   against the CPU reference) and compression_bench (kernel throughput)
#   python/         the torchwan package built with CUDA for the torch installed here
#                   (torch-version says which: the package loads only with that torch)
#   pytest/         pytest and its pure-Python dependencies
#   lib/            every shared library those load that is neither glibc, the CUDA driver nor
#                   torch's own (UCX, ZeroMQ, libsodium, spdlog, fmt and theirs, the CUDA runtime)
#   lib/ucx/        UCX's loadable modules: none are needed (TCP and shared memory are built into
#                   libuct); gpu_check.sh points UCX_MODULE_DIR here so it looks nowhere else
#   lib-libstdcxx/  this machine's libstdc++ and libgcc_s, which gpu_check.sh puts first only
#                   where the system's lack the newest GLIBCXX version ours need
#                   (glibcxx-needed)
set -euo pipefail

cd "$(dirname "$0")/.."
PACK="$PWD/.device"
CACHE="${TORCHWAN_CACHE:-/var/cache/torchwan}"
export CCACHE_DIR="$CACHE/ccache" CCACHE_BASEDIR="$PWD" CCACHE_NOHASHDIR=1
export PIP_CACHE_DIR="$CACHE/pip"
LIMIT_MIB=60  # a device call carries 64 MiB in all

if ! grep -q "TORCHWAN_WITH_CUDA:BOOL=ON" build/tests/CMakeCache.txt 2>/dev/null; then
  echo "gpu_pack: build/tests is not configured with CUDA (run scripts/setup.sh on a machine" \
    "with nvcc)" >&2
  exit 1
fi

rm -rf "$PACK"
mkdir -p "$PACK/bin" "$PACK/lib/ucx" "$PACK/lib-libstdcxx" "$PACK/python" "$PACK/pytest"

cmake --build build/tests --target compression_cuda_test compression_bench
cp build/tests/tests/cpp/compression_cuda_test build/tests/bench/compression_bench "$PACK/bin/"

flock /tmp/torchwan-install.lock env CMAKE_GENERATOR=Ninja CMAKE_C_COMPILER_LAUNCHER=ccache \
  CMAKE_CXX_COMPILER_LAUNCHER=ccache python3 -m pip install -q --no-build-isolation --no-deps \
  -C build-dir=build/python --target "$PACK/python" .
PYTHONPATH="$PACK/python" python3 -c \
  'import torchwan._C as c, sys; sys.exit(0 if c.built_with_cuda else "package built without CUDA")'
python3 -c 'import torch; print(torch.__version__)' >"$PACK/torch-version"
python3 -m pip install -q --target "$PACK/pytest" pytest

# Shared libraries, as the dynamic loader here resolves them (torch's are left to the machine's
# torch; "not found" entries are those, found through the package's run path at import).
binaries=("$PACK"/bin/* "$PACK"/python/torchwan/*.so "$PACK"/python/torchwan/bin/*)
ldd "${binaries[@]}" 2>/dev/null | awk '$2 == "=>" && $3 ~ /^\// {print $3}' | sort -u |
  while read -r library; do
    case "$(basename "$library")" in
      libc.so.* | libm.so.* | libpthread.so.* | libdl.so.* | librt.so.* | libutil.so.* | \
        libresolv.so.* | ld-linux* | libcuda.so.*) ;;
      libstdc++.so.* | libgcc_s.so.*) cp -L "$library" "$PACK/lib-libstdcxx/" ;;
      *) [[ "$library" == */site-packages/* ]] || cp -L "$library" "$PACK/lib/" ;;
    esac
  done
grep -aoh 'GLIBCXX_3\.4\.[0-9]*' "${binaries[@]}" "$PACK"/lib/*.so* | sort -uV | tail -n 1 \
  >"$PACK/glibcxx-needed"

size_mib=$(du -sm "$PACK" | cut -f1)
echo "gpu_pack: .device/ holds ${size_mib} MiB for torch $(cat "$PACK/torch-version")" \
  "(needs $(cat "$PACK/glibcxx-needed"))"
if ((size_mib > LIMIT_MIB)); then
  echo "gpu_pack: more than ${LIMIT_MIB} MiB; a device call carries 64 MiB in all" >&2
  exit 1
fi
