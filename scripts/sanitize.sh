#!/usr/bin/env bash
# Builds the C++ test suite (tests/cpp, torch-free) with sanitizers and runs it:
#   1. AddressSanitizer + UndefinedBehaviorSanitizer over the whole suite (build-asan);
#   2. ThreadSanitizer over the threading tests of the transports and the engine (build-tsan,
#      filter TSAN_TESTS below: the rest of the suite is single-threaded around the transports
#      those tests already cover, and TSan slows every test 5-15x).
# Any report fails the run (halt_on_error). Builds live in build/asan and build/tsan (ignored by
# git): inside the clone, so ccache (under $TORCHWAN_CACHE) hits from any clone.
#   bash scripts/sanitize.sh [asan|tsan|all]   (default all)
# Suppressions and why: scripts/sanitizers/ and docs/security-testing.md.
set -euo pipefail

cd "$(dirname "$0")/.."
WHICH="${1:-all}"
CACHE="${TORCHWAN_CACHE:-/var/cache/torchwan}"
SUPP="$PWD/scripts/sanitizers"
export CCACHE_DIR="$CACHE/ccache"
export CCACHE_BASEDIR="$PWD"
export CCACHE_NOHASHDIR=1
JOBS="${CMAKE_BUILD_PARALLEL_LEVEL:-2}"

# The transport and engine tests whose threads (progress threads, completion callbacks, the
# engine's waits) TSan checks: the UCX transport, the core's progress loop under it, every
# transport's shutdown and any-source paths, and the collectives engine on 3 and 5 ranks over
# memory and UCX. Left out: ZeroMQ's transport and collectives, because libzmq is a prebuilt,
# uninstrumented library whose I/O threads TSan cannot follow (false reports, and crashes in its
# lock-free pipes), and the tests that bound a duration ("...Quickly"), which a 5-15x TSan
# slowdown breaks. ASan and the regular suite run all of them. ctest names a parameterized test
# "<name>/<param>  # GetParam() = ...", so a pattern ends a name with "( |$)", not "$".
TSAN_TESTS='^(UcxTransport|UcxLanes|Lanes/UcxLanes|Transports/AnySource|AllTransports/TransportShutdown|UcxShutdown|UcxPeerDeath|Links/LinkCore\.[^/]*/ucx( |$)|Engine/Collectives\.[^/]*/(memory|ucx)_size[35]( |$))'
TSAN_EXCLUDE='Quickly|_NOT_BUILT'
# The executables holding those tests: the TSan build compiles only them (and their libraries).
TSAN_TARGETS=(any_source_test collectives_test transport_link_core_test transport_shutdown_test
              ucx_transport_test)

build() {  # build <dir> <sanitizers> [targets...]
  local dir="$1" sanitizers="$2"
  shift 2
  cmake -S . -B "$dir" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo \
    -DCMAKE_C_COMPILER_LAUNCHER=ccache -DCMAKE_CXX_COMPILER_LAUNCHER=ccache \
    -DTORCHWAN_SANITIZE="$sanitizers" -DTORCHWAN_BUILD_BENCH=OFF -DTORCHWAN_WITH_CUDA=OFF >/dev/null
  if (($#)); then
    cmake --build "$dir" -j "$JOBS" --target "$@"
  else
    cmake --build "$dir" -j "$JOBS"
  fi
}

# UCX's memory hooks patch malloc/mmap at run time, which the sanitizers' own interceptors do not
# survive; torchwan never registers memory through them (it posts host buffers directly).
export UCX_MEM_MALLOC_HOOKS=no
export UCX_MEM_MMAP_HOOK_MODE=none
export UCX_MEM_EVENTS=no

if [[ "$WHICH" == all || "$WHICH" == asan ]]; then
  build build/asan "address,undefined"
  export ASAN_OPTIONS="halt_on_error=1:abort_on_error=1:detect_leaks=1:suppressions=$SUPP/asan.supp"
  export LSAN_OPTIONS="suppressions=$SUPP/lsan.supp:print_suppressions=0"
  export UBSAN_OPTIONS="halt_on_error=1:print_stacktrace=1:suppressions=$SUPP/ubsan.supp"
  ctest --test-dir build/asan --output-on-failure --timeout 300 -j "$JOBS"
  unset ASAN_OPTIONS LSAN_OPTIONS UBSAN_OPTIONS
fi

if [[ "$WHICH" == all || "$WHICH" == tsan ]]; then
  build build/tsan "thread" "${TSAN_TARGETS[@]}"
  export TSAN_OPTIONS="halt_on_error=1:second_deadlock_stack=1:suppressions=$SUPP/tsan.supp"
  ctest --test-dir build/tsan --output-on-failure --timeout 300 -j "$JOBS" \
    -R "$TSAN_TESTS" -E "$TSAN_EXCLUDE"
fi
