#!/usr/bin/env bash
# Runs the whole test suite: the C++ tests (ctest) and the Python tests (pytest, real processes).
# Expects scripts/setup.sh to have run.
set -euo pipefail

cd "$(dirname "$0")/.."
export CCACHE_DIR="${TORCHWAN_CACHE:-/var/cache/torchwan}/ccache"
cmake --build build/tests
ctest --test-dir build/tests --output-on-failure --timeout 300
python3 -m pytest -q tests/python
