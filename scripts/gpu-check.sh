#!/usr/bin/env bash
# The whole GPU check, as one command on a machine with an NVIDIA GPU, the CUDA addon built
# (`OTHINK_CUDA=1 pnpm build`) and Python with torch + transformers:
#
#   bash scripts/gpu-check.sh [--gpu-only] [OUT_DIR]
#
# --gpu-only runs only the suites that use the GPU (the files calling describeGpu) in step 1: for a
# machine that has the CUDA build but not every package's dependencies (image decoding, plots).
# 1. every test suite with the GPU suites required (OTHINK_REQUIRE_GPU=1: a suite that cannot
#    run fails instead of skipping);
# 2. reference numbers from transformers itself (scripts/transformers_reference.py: the tiny
#    fixture model in float64, a random-init Qwen2-VL-2B in fp32 and bf16);
# 3. our port against them (packages/core/test/transformers-parity.test.ts).
# Logs and the reference summary go to OUT_DIR (default /tmp/othink-gpu-check); the exit status
# is non-zero when any part failed.
set -uo pipefail
cd "$(dirname "$0")/.."
suites=()
if [[ ${1:-} == --gpu-only ]]; then
  mapfile -t suites < <(grep -l 'describeGpu(' -r native/test packages/*/test | sort)
  shift
fi
out=${1:-${OUT:-/tmp/othink-gpu-check}}
ref=${OTHINK_HF_REFERENCE:-/tmp/othink-hf-reference}
mkdir -p "$out" "$ref"
# `vitest`: the project's (on-device.sh defines a function; elsewhere pnpm runs it).
type vitest >/dev/null 2>&1 || vitest() { pnpm exec vitest "$@"; }
status=0

echo "== 1/3 ${suites[*]:-every suite}, GPU suites required"
OTHINK_REQUIRE_GPU=1 vitest run "${suites[@]}" 2>&1 | tee "$out/tests.log" | grep -Ev '^\s*(✓|↓)' | tail -n 120
[[ ${PIPESTATUS[0]} -eq 0 ]] || status=1

echo "== 2/3 transformers reference"
PYTHONUNBUFFERED=1 python3 scripts/transformers_reference.py --fixtures fixtures --out "$ref" --big 2>&1 |
  tee "$out/reference.log" | tail -n 40
[[ ${PIPESTATUS[0]} -eq 0 ]] || status=1
cp "$ref/summary.json" "$out/reference-summary.json" 2>/dev/null

echo "== 3/3 our port vs transformers"
OTHINK_HF_REFERENCE=$ref OTHINK_REQUIRE_GPU=1 vitest run packages/core/test/transformers-parity.test.ts 2>&1 |
  tee "$out/parity.log" | tail -n 60
[[ ${PIPESTATUS[0]} -eq 0 ]] || status=1

echo "gpu-check: $([[ $status -eq 0 ]] && echo passed || echo FAILED) (logs in $out)"
exit $status
