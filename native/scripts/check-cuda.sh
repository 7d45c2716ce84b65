#!/usr/bin/env bash
# Compiles the CUDA side of the addon without a GPU, so CI catches CUDA build breaks on machines
# that have nvcc but no GPU and no cuBLAS:
#   1. every src/cuda/*.cu with nvcc -c, warnings as errors, for the architectures CMake builds;
#   2. the cuBLAS path of cuda/gemm.cu: against the real cublas_v2.h when there is one, else
#      against a minimal stand-in declaring exactly the cuBLAS calls it makes (a syntax and type
#      check of our code, not of cuBLAS);
#   3. the N-API surface with OTHINK_WITH_CUDA (addon.cc, addon_cuda.cc, storage and every op binding)
#      and the communicator (comm/*.cc: NCCL's path, gloo's where installed) with g++ -fsyntax-only;
#   4. the caching allocator's bookkeeping (cuda/allocator.cu is host code): built with g++ against
#      the fake CUDA runtime of test/cuda-allocator-check.cc and run.
# Prints "skipped" when nvcc is absent.
set -euo pipefail
cd "$(dirname "$0")/.."
NVCC=${NVCC:-$(command -v nvcc || true)}
if [ -z "$NVCC" ]; then
  echo "check-cuda: nvcc not found, skipped"
  exit 0
fi
# The toolkit root as nvcc itself sees it (nvcc may be a wrapper script outside the toolkit).
CUDA_HOME=${CUDA_HOME:-$("$NVCC" --dryrun -c -x cu /dev/null -o /dev/null 2>&1 | sed -n 's/^#\$ TOP=//p' | head -1)}
CUDA_HOME=$(readlink -f "${CUDA_HOME:-/usr/local/cuda}")
NAPI_INC=$(node -p "require('node-addon-api').include_dir")
NODE_INC="$(dirname "$(dirname "$(readlink -f "$(command -v node)")")")/include/node"
ARCHS=${CUDA_ARCHS:-"80 90"}
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT

gencode=()
for a in $ARCHS; do gencode+=(-gencode "arch=compute_$a,code=sm_$a"); done
# Same options as CMake's CUDA block, plus warnings as errors (nvcc's own and the host compiler's).
nvcc_flags=(-std=c++17 -O3 -lineinfo "${gencode[@]}" -Isrc -Werror all-warnings -Xcompiler=-Wall,-Wextra,-Werror)

n=0
for f in src/cuda/*.cu; do
  "$NVCC" "${nvcc_flags[@]}" -c "$f" -o "$out/$(basename "$f").o"
  n=$((n + 1))
done

if echo '#include <cublas_v2.h>' | "$NVCC" -E -x cu - -o /dev/null 2>/dev/null; then
  cublas="the real cublas_v2.h (compiled above)"
else
  mkdir -p "$out/stub"
  cat >"$out/stub/cublas_v2.h" <<'STUB'
// Stand-in for cublas_v2.h (check-cuda.sh only): the declarations cuda/gemm.cu uses, as in cuBLAS 12/13.
#pragma once
#include <cuda_runtime_api.h>
#include <library_types.h>
typedef struct cublasContext* cublasHandle_t;
typedef enum { CUBLAS_STATUS_SUCCESS = 0, CUBLAS_STATUS_NOT_INITIALIZED = 1 } cublasStatus_t;
typedef enum { CUBLAS_OP_N = 0, CUBLAS_OP_T = 1, CUBLAS_OP_C = 2 } cublasOperation_t;
typedef enum { CUBLAS_DEFAULT_MATH = 0, CUBLAS_TF32_TENSOR_OP_MATH = 3 } cublasMath_t;
typedef enum { CUBLAS_COMPUTE_32F = 68, CUBLAS_COMPUTE_32F_FAST_TF32 = 77 } cublasComputeType_t;
typedef enum { CUBLAS_GEMM_DEFAULT = -1 } cublasGemmAlgo_t;
extern "C" {
cublasStatus_t cublasCreate_v2(cublasHandle_t* handle);
cublasStatus_t cublasSetStream_v2(cublasHandle_t handle, cudaStream_t streamId);
cublasStatus_t cublasSetMathMode(cublasHandle_t handle, cublasMath_t mode);
const char* cublasGetStatusString(cublasStatus_t status);
cublasStatus_t cublasGemmEx(cublasHandle_t handle, cublasOperation_t transa, cublasOperation_t transb, int m, int n,
                            int k, const void* alpha, const void* A, cudaDataType Atype, int lda, const void* B,
                            cudaDataType Btype, int ldb, const void* beta, void* C, cudaDataType Ctype, int ldc,
                            cublasComputeType_t computeType, cublasGemmAlgo_t algo);
cublasStatus_t cublasGemmStridedBatchedEx(cublasHandle_t handle, cublasOperation_t transa, cublasOperation_t transb,
                                          int m, int n, int k, const void* alpha, const void* A, cudaDataType Atype,
                                          int lda, long long int strideA, const void* B, cudaDataType Btype, int ldb,
                                          long long int strideB, const void* beta, void* C, cudaDataType Ctype,
                                          int ldc, long long int strideC, int batchCount,
                                          cublasComputeType_t computeType, cublasGemmAlgo_t algo);
}
#define cublasCreate cublasCreate_v2
#define cublasSetStream cublasSetStream_v2
STUB
  "$NVCC" "${nvcc_flags[@]}" -I"$out/stub" -c src/cuda/gemm.cu -o "$out/gemm-cublas-stub.o"
  # The stand-in must have been taken: the object then calls cublasGemmEx (and the batched form).
  if ! nm "$out/gemm-cublas-stub.o" | grep -q ' U cublasGemmEx' ||
    ! nm "$out/gemm-cublas-stub.o" | grep -q ' U cublasGemmStridedBatchedEx'; then
    echo "check-cuda: cuda/gemm.cu did not compile its cuBLAS path against the stand-in" >&2
    exit 1
  fi
  cublas="a stand-in cublas_v2.h (no cuBLAS headers here)"
fi

bridge_flags=(-std=c++17 -fsyntax-only -Wall -Wextra -Werror -Wno-psabi -fopenmp -DOTHINK_WITH_CUDA -DNAPI_VERSION=8
  -DNAPI_CPP_EXCEPTIONS -DNODE_ADDON_API_DISABLE_DEPRECATED -Isrc -I"$CUDA_HOME/include" -I"$NAPI_INC" -I"$NODE_INC")
"${CXX:-g++}" "${bridge_flags[@]}" src/addon_cuda.cc
"${CXX:-g++}" "${bridge_flags[@]}" src/addon.cc
for f in src/storage.cc src/bindings/*.cc; do
  "${CXX:-g++}" "${bridge_flags[@]}" "$f"
done
# The communicator with OTHINK_WITH_CUDA: NCCL is declared in comm/nccl_group.cc (loaded with dlopen at
# run time), so this needs no NCCL; with gloo too where its headers are installed.
comm_flags=("${bridge_flags[@]}")
if [ -e /usr/include/gloo/rendezvous/context.h ]; then comm_flags+=(-DOTHINK_WITH_GLOO); fi
for f in src/comm/*.cc; do
  "${CXX:-g++}" "${comm_flags[@]}" "$f"
done

"${CXX:-g++}" -std=c++17 -O1 -Wall -Wextra -Werror -pthread -Isrc -I"$CUDA_HOME/include" -x c++ src/cuda/allocator.cu \
  -x none test/cuda-allocator-check.cc -o "$out/cuda-allocator-check"
allocator_result=$("$out/cuda-allocator-check")

echo "check-cuda: compiled $n CUDA sources (sm_${ARCHS// /, sm_}) with $("$NVCC" --version | tail -1)"
echo "check-cuda: cuBLAS path of cuda/gemm.cu checked against $cublas"
echo "check-cuda: the N-API surface (addon.cc, addon_cuda.cc, storage, every op binding, the communicator) built with OTHINK_WITH_CUDA passes g++ -fsyntax-only"
echo "check-cuda: caching allocator against a fake CUDA runtime: ${allocator_result#cuda-allocator-check: }"
