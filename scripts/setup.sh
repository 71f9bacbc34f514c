#!/usr/bin/env bash
# Installs every system and Python dependency of torchwan on Debian 12, then builds and installs
# the Python package and the C++ test suite. Safe to rerun: downloads and compilations are cached
# under $TORCHWAN_CACHE (default /var/cache/torchwan), outside the source tree.
set -euo pipefail

cd "$(dirname "$0")/.."
CACHE="${TORCHWAN_CACHE:-/var/cache/torchwan}"
mkdir -p "$CACHE"

APT_PACKAGES=(
  build-essential cmake ninja-build ccache pkg-config
  libucx-dev ucx-utils libzmq3-dev cppzmq-dev libsodium-dev libspdlog-dev libfmt-dev libgtest-dev
  iperf3 iproute2 iptables iputils-ping libnetfilter-queue-dev
  # clang's libFuzzer and sanitizer runtimes (scripts/fuzz.sh; scripts/sanitize.sh uses gcc's).
  clang libclang-rt-14-dev
)
missing=()
for package in "${APT_PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q "install ok installed" ||
    missing+=("$package")
done
if ((${#missing[@]})); then
  echo "setup: installing ${missing[*]}"
  SUDO=""
  [[ $(id -u) -ne 0 ]] && SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${missing[@]}" >/dev/null
fi

export PIP_CACHE_DIR="$CACHE/pip"
export PIP_DISABLE_PIP_VERSION_CHECK=1
python3 -m pip install -q torch numpy pytest pytest-timeout "scikit-build-core>=0.10" matplotlib \
  "ray[train]" expecttest

# ccache keeps compilations across clones and build directories.
export CCACHE_DIR="$CACHE/ccache"
export CCACHE_BASEDIR="$PWD"
export CCACHE_NOHASHDIR=1
export CMAKE_C_COMPILER_LAUNCHER=ccache
export CMAKE_CXX_COMPILER_LAUNCHER=ccache
export CMAKE_CUDA_COMPILER_LAUNCHER=ccache
export CMAKE_BUILD_PARALLEL_LEVEL="${CMAKE_BUILD_PARALLEL_LEVEL:-$(nproc)}"
export CMAKE_GENERATOR=Ninja

# The extension must match the installed torch, so build against it (no build isolation).
python3 -m pip install -q --no-build-isolation --no-deps -C build-dir=build/python .

# The C++ test suite (torch-free layers).
cmake -S . -B build/tests -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build build/tests
echo "setup: done"
