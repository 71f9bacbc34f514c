#!/usr/bin/env bash
# Builds the libFuzzer harnesses of fuzz/ with clang (ASan + UBSan) and runs each one for
# SECONDS (default 20) from its checked-in seed corpus; fails on the first crash, leak, timeout or
# sanitizer report. The build lives in build/fuzz (ignored by git): inside the clone, so ccache
# (under $TORCHWAN_CACHE) finds the same relative paths, and hits, from any clone.
#   bash scripts/fuzz.sh [seconds-per-harness] [harness-name-regex]
# Longer campaigns: docs/security-testing.md.
set -euo pipefail

cd "$(dirname "$0")/.."
SECONDS_PER_HARNESS="${1:-20}"
FILTER="${2:-.}"
CACHE="${TORCHWAN_CACHE:-/var/cache/torchwan}"
BUILD="build/fuzz"
export CCACHE_DIR="$CACHE/ccache"
export CCACHE_BASEDIR="$PWD"
export CCACHE_NOHASHDIR=1

CC=clang CXX=clang++ cmake -S . -B "$BUILD" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo \
  -DCMAKE_C_COMPILER_LAUNCHER=ccache -DCMAKE_CXX_COMPILER_LAUNCHER=ccache \
  -DTORCHWAN_FUZZ=ON -DTORCHWAN_BUILD_TESTS=OFF -DTORCHWAN_BUILD_BENCH=OFF \
  -DTORCHWAN_WITH_CUDA=OFF >/dev/null
cmake --build "$BUILD" -j "${CMAKE_BUILD_PARALLEL_LEVEL:-2}"

export ASAN_OPTIONS="halt_on_error=1:abort_on_error=1:detect_leaks=1"
export UBSAN_OPTIONS="halt_on_error=1:print_stacktrace=1"
# New inputs the fuzzer finds go to a scratch corpus; the checked-in seeds stay as they are.
WORK="$BUILD/corpus-run"
ARTIFACTS="$BUILD/artifacts"
mkdir -p "$ARTIFACTS"
status=0
for harness in "$BUILD"/fuzz/fuzz_*; do
  name="$(basename "$harness")"
  name="${name#fuzz_}"
  [[ "$name" == write_seeds ]] && continue
  [[ "$name" =~ $FILTER ]] || continue
  mkdir -p "$WORK/$name"
  echo "fuzz: $name for ${SECONDS_PER_HARNESS}s"
  if ! "$harness" "$WORK/$name" "fuzz/corpus/$name" -max_total_time="$SECONDS_PER_HARNESS" \
    -max_len=4096 -timeout=10 -rss_limit_mb=2048 -artifact_prefix="$ARTIFACTS/$name-" \
    -print_final_stats=0 >"$BUILD/$name.log" 2>&1; then
    tail -n 60 "$BUILD/$name.log"
    echo "fuzz: $name FAILED; reproducer under $ARTIFACTS (run: $harness <file>)"
    status=1
  fi
done
exit "$status"
