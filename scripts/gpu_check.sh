#!/usr/bin/env bash
# The CUDA checks, in one command, for a machine with NVIDIA GPUs, torch and nvcc but neither this
# project's Debian packages nor a network. Needs .device/, made by scripts/gpu_pack.sh on the
# build machine and carried beside the tree. In order, each bounded in time (under 8 minutes in
# all on one H100):
#   1. the codec kernels against the bit-exact CPU reference (compression_cuda_test);
#   2. the kernel benchmark: compression_gpu.{md,json} (GB/s, and each encode's share of the
#      GPU's memory bandwidth as a device-to-device copy measures it; target: int8 with error
#      feedback at 60 % or more);
#   3. the package's CUDA tests with several ranks sharing the GPU (one GPU each where there are
#      several): collectives and their stream semantics, the rooted and coalesced forms,
#      PREMUL_SUM, a slow producer, freed inputs, compression and hooks on CUDA tensors (bit for
#      bit against CPU tensors, only payloads crossing PCIe, also through the host tier);
#   4. the NCCL host tier (4 ranks as 2 hosts x 2, exact against Gloo): with 2 or more GPUs the
#      tier itself, with one GPU only its fallback and its error when a host's ranks share the GPU.
# Writes the logs, the results and summary.md into $OUT (default ./gpu-check-out); exits non-zero
# when a step failed or could not run. Copy compression_gpu.* to bench/results/ to record them.
#   bash scripts/gpu_check.sh
set -uo pipefail

cd "$(dirname "$0")/.."
ROOT="$PWD"
PACK="$ROOT/.device"
OUT="${OUT:-$ROOT/gpu-check-out}"
PYTHON="${PYTHON:-python3}"
mkdir -p "$OUT"
SUMMARY="$OUT/summary.md"
status=0

if [[ ! -d "$PACK/bin" ]]; then
  echo "gpu_check: no .device/ here: run scripts/gpu_pack.sh on the build machine and carry" \
    ".device with the tree" >&2
  exit 2
fi

# step NAME SECONDS COMMAND...: runs COMMAND with its output in NAME.log and a row in the summary.
step() {
  local name="$1" limit="$2"
  shift 2
  local started=$SECONDS rc
  echo "== $name"
  timeout "$limit" "$@" >"$OUT/$name.log" 2>&1
  rc=$?
  tail -n 25 "$OUT/$name.log"
  local verdict="passed"
  ((rc == 124)) && verdict="TIMED OUT after ${limit} s"
  ((rc != 0 && rc != 124)) && verdict="FAILED (exit $rc)"
  ((rc == 0)) || status=1
  echo "| $name | $verdict | $((SECONDS - started)) s |" >>"$SUMMARY"
}

# fail_if_skipped NAME PATTERN: a test that skips on a GPU machine (no usable device, a build
# without CUDA) must not pass as if it had run.
fail_if_skipped() {
  if grep -q -- "$2" "$OUT/$1.log"; then
    echo "| $1 | FAILED: tests skipped on a GPU machine (see $1.log) | |" >>"$SUMMARY"
    status=1
  fi
}

# The machine's own libraries first, then what the pack brings; the pack's libstdc++ only where
# the system's is older than what the pack's binaries were linked against.
torch_lib="$("$PYTHON" -c 'import os, torch; print(os.path.join(os.path.dirname(torch.__file__), "lib"))')"
export LD_LIBRARY_PATH="$PACK/lib:$torch_lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
needed="$(cat "$PACK/glibcxx-needed" 2>/dev/null)"
system_libstdcxx="$(ldconfig -p 2>/dev/null | awk '/libstdc\+\+\.so\.6 .*x86-64/ {print $NF; exit}')"
if [[ -n "$needed" ]] && ! grep -qa "$needed" "${system_libstdcxx:-/nonexistent}" 2>/dev/null; then
  export LD_LIBRARY_PATH="$PACK/lib-libstdcxx:$LD_LIBRARY_PATH"
  libstdcxx_note="the pack's (the system's lacks $needed)"
else
  libstdcxx_note="the system's ($system_libstdcxx)"
fi
export UCX_MODULE_DIR="$PACK/lib/ucx"
export PYTHONPATH="$PACK/python:$PACK/pytest${PYTHONPATH:+:$PYTHONPATH}"
export PATH="$PACK/python/bin:$PATH"

{
  echo "# GPU check, $(date -u '+%Y-%m-%d %H:%M UTC')"
  echo
  echo '```'
  nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader 2>&1
  "$PYTHON" -c 'import torch; print("torch", torch.__version__, "CUDA", torch.version.cuda,
"devices", torch.cuda.device_count())' 2>&1
  nvcc --version 2>/dev/null | tail -n 1
  echo "package built for torch $(cat "$PACK/torch-version"); libstdc++: $libstdcxx_note"
  echo '```'
  echo
  echo "| step | result | time |"
  echo "|---|---|---|"
} >"$SUMMARY"
cat "$SUMMARY"

step codec_tests 180 "$PACK/bin/compression_cuda_test" --gtest_brief=1
fail_if_skipped codec_tests "SKIPPED"

step kernel_bench 180 "$PACK/bin/compression_bench" --devices gpu --output-dir "$OUT"
if [[ -f "$OUT/compression_gpu.json" ]]; then
  "$PYTHON" - "$OUT/compression_gpu.json" >>"$SUMMARY" <<'EOF'
import json, sys
rows = {row["codec"]: row for row in json.load(open(sys.argv[1]))["codecs"]}
share = rows["int8_block256_error_feedback"]["encode_memory_share"]
verdict = "met" if share >= 0.6 else "missed"
print(f"\nint8 encode with error feedback: {share:.0%} of the measured memory bandwidth "
      f"(target >= 60 %: {verdict})")
EOF
else
  echo "| kernel_bench | FAILED: no GPU rows (see kernel_bench.log) | |" >>"$SUMMARY"
  status=1
fi

built_for="$(cat "$PACK/torch-version")"
here="$("$PYTHON" -c 'import torch; print(torch.__version__)')"
if [[ "$built_for" == "$here" ]]; then
  step python_cuda_tests 300 "$PYTHON" -m pytest -q -p no:cacheprovider \
    --junitxml="$OUT/python_cuda_tests.xml" tests/python/test_cuda.py \
    tests/python/test_cuda_paths.py
  fail_if_skipped python_cuda_tests " skipped"
  gpus="$("$PYTHON" -c 'import torch; print(torch.cuda.device_count())')"
  only_one_gpu=()
  # NCCL takes one GPU per rank of a communicator: one GPU leaves only the fallback to test.
  ((gpus >= 2)) || only_one_gpu=(-k "not equals_gloo_and_moves")
  step nccl_host_tier 150 "$PYTHON" -m pytest -q -p no:cacheprovider \
    --junitxml="$OUT/nccl_host_tier.xml" tests/python/test_nccl_tier.py "${only_one_gpu[@]}"
  fail_if_skipped nccl_host_tier " skipped"
  if ((gpus < 2)); then
    echo "| nccl_host_tier: the NCCL group itself | NOT RUN: needs 2 GPUs, this machine has" \
      "$gpus | 0 s |" >>"$SUMMARY"
  fi
else
  echo "| python_cuda_tests | NOT RUN: the package was built for torch $built_for, this machine" \
    "has $here (run scripts/gpu_pack.sh with torch==$here installed) | 0 s |" >>"$SUMMARY"
  status=1
fi

echo
cat "$SUMMARY"
exit "$status"
