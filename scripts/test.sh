#!/usr/bin/env bash
# Runs the whole test suite: the C++ tests (ctest), the Python tests (pytest, real processes), a
# bounded fuzzing run of every wire decoder, and the C++ tests again under sanitizers (ASan+UBSan
# for all of them, TSan for the transport and engine threading tests).
# Expects scripts/setup.sh to have run. TORCHWAN_FUZZ_SECONDS (per harness, default 10) bounds
# the fuzzing run; docs/security-testing.md has the longer campaigns.
set -euo pipefail

cd "$(dirname "$0")/.."
export CCACHE_DIR="${TORCHWAN_CACHE:-/var/cache/torchwan}/ccache"
cmake --build build/tests
ctest --test-dir build/tests --output-on-failure --timeout 300
python3 -m pytest -q tests/python
bash scripts/fuzz.sh "${TORCHWAN_FUZZ_SECONDS:-10}"
bash scripts/sanitize.sh all
