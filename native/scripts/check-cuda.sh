#!/usr/bin/env bash
# Compiles every CUDA source with nvcc (no GPU and no cuBLAS needed), so CI catches CUDA build
# breaks on machines without a GPU. Prints "skipped" when nvcc is absent.
set -euo pipefail
cd "$(dirname "$0")/.."
NVCC=${NVCC:-$(command -v nvcc || true)}
if [ -z "$NVCC" ]; then
  echo "check-cuda: nvcc not found, skipped"
  exit 0
fi
NAPI_INC=$(node -p "require('node-addon-api').include_dir")
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
n=0
for f in src/cuda/*.cu; do
  "$NVCC" -std=c++17 -O3 -arch=sm_90 -Isrc -I"$NAPI_INC" -DOTHINK_WITH_CUDA -c "$f" -o "$out/$(basename "$f").o"
  n=$((n + 1))
done
echo "check-cuda: compiled $n CUDA sources with $("$NVCC" --version | tail -1)"
