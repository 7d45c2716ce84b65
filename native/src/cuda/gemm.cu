// cuBLAS behind cuda/gemm.cuh. cuBLAS is column-major: a row-major [r, c] matrix with row stride ld
// is the column-major [c, r] matrix (its transpose) with the same ld, so row-major
// C = op(A) op(B) is column-major C^T = op(B)^T op(A)^T: swap the operands and M with N.
#include <climits>
#include <stdexcept>
#include <string>

#include "cuda/check.cuh"
#include "cuda/gemm.cuh"

// OTHINK_NO_CUBLAS: CMake found the header but no library to link; build the stub path.
#if !defined(OTHINK_NO_CUBLAS) && __has_include(<cublas_v2.h>)
#define OTHINK_HAVE_CUBLAS 1
#include <cublas_v2.h>

#include <unordered_map>
#else
#define OTHINK_HAVE_CUBLAS 0
#endif

namespace othink::cuda {

#if OTHINK_HAVE_CUBLAS
namespace {

void check_cublas(cublasStatus_t status, const char* call, const char* file, int line) {
  if (status != CUBLAS_STATUS_SUCCESS)
    throw std::runtime_error(std::string("cuBLAS error ") + cublasGetStatusString(status) + " in " + call + " at " +
                             file + ":" + std::to_string(line));
}
#define OTHINK_CUBLAS_CHECK(call) check_cublas((call), #call, __FILE__, __LINE__)

// One handle per host thread and device, made on first use. Never destroyed: destroying handles in
// static destructors races the CUDA driver's own teardown at process exit.
cublasHandle_t handle_for_current_device() {
  thread_local std::unordered_map<int, cublasHandle_t> handles;
  int device = 0;
  OTHINK_CUDA_CHECK(cudaGetDevice(&device));
  const auto found = handles.find(device);
  if (found != handles.end()) return found->second;
  cublasHandle_t handle = nullptr;
  OTHINK_CUBLAS_CHECK(cublasCreate(&handle));
  // Default math: compute at the requested precision (CUBLAS_COMPUTE_32F), no TF32 tensor ops.
  OTHINK_CUBLAS_CHECK(cublasSetMathMode(handle, CUBLAS_DEFAULT_MATH));
  handles.emplace(device, handle);
  return handle;
}

int as_int(int64_t x, const char* what) {
  if (x < 0 || x > INT_MAX) throw_bad_argument("gemm", std::string(what) + " does not fit cuBLAS's int");
  return static_cast<int>(x);
}

}  // namespace

bool cublas_available() { return true; }

namespace {

cudaDataType_t output_type(GemmInput input, GemmOutput output, const char* fn) {
  if (output == GemmOutput::F32) return CUDA_R_32F;
  if (input != GemmInput::BF16) throw_bad_argument(fn, "a bfloat16 C needs bfloat16 A and B");
  return CUDA_R_16BF;
}

}  // namespace

void gemm(bool trans_a, bool trans_b, int64_t m, int64_t n, int64_t k, float alpha, const void* a, int64_t lda,
          const void* b, int64_t ldb, GemmInput input, float beta, void* c, GemmOutput output, int64_t ldc,
          cudaStream_t stream) {
  if (m == 0 || n == 0) return;
  const cudaDataType_t c_type = output_type(input, output, "gemm");
  cublasHandle_t handle = handle_for_current_device();
  OTHINK_CUBLAS_CHECK(cublasSetStream(handle, stream));
  const cudaDataType_t type = input == GemmInput::BF16 ? CUDA_R_16BF : CUDA_R_32F;
  // Column-major: C^T [n, m] = op(B)^T [n, k] @ op(A)^T [k, m]. B's memory read column-major is
  // B^T when B is stored [k, n] (no transpose needed), op(B) when stored [n, k] (transpose it).
  // CUBLAS_COMPUTE_32F: float32 products and sums for both input types (bfloat16 on tensor cores).
  OTHINK_CUBLAS_CHECK(cublasGemmEx(handle, trans_b ? CUBLAS_OP_T : CUBLAS_OP_N, trans_a ? CUBLAS_OP_T : CUBLAS_OP_N,
                                   as_int(n, "n"), as_int(m, "m"), as_int(k, "k"), &alpha, b, type, as_int(ldb, "ldb"),
                                   a, type, as_int(lda, "lda"), &beta, c, c_type, as_int(ldc, "ldc"),
                                   CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT));
}

void gemm(bool trans_a, bool trans_b, int64_t m, int64_t n, int64_t k, float alpha, const void* a,
          int64_t lda, const void* b, int64_t ldb, GemmInput input, float beta, float* c, int64_t ldc,
          cudaStream_t stream) {
  gemm(trans_a, trans_b, m, n, k, alpha, a, lda, b, ldb, input, beta, c, GemmOutput::F32, ldc, stream);
}

void gemm_strided_batched(bool trans_a, bool trans_b, int64_t m, int64_t n, int64_t k, float alpha, const void* a,
                          int64_t lda, int64_t stride_a, const void* b, int64_t ldb, int64_t stride_b,
                          GemmInput input, float beta, void* c, GemmOutput output, int64_t ldc, int64_t stride_c,
                          int64_t batch, cudaStream_t stream) {
  if (m == 0 || n == 0 || batch == 0) return;
  if (stride_a < 0 || stride_b < 0 || stride_c < 0) throw_bad_argument("gemm_strided_batched", "negative stride");
  const cudaDataType_t c_type = output_type(input, output, "gemm_strided_batched");
  cublasHandle_t handle = handle_for_current_device();
  OTHINK_CUBLAS_CHECK(cublasSetStream(handle, stream));
  const cudaDataType_t type = input == GemmInput::BF16 ? CUDA_R_16BF : CUDA_R_32F;
  // The operand swap of gemm (column-major C^T = op(B)^T op(A)^T), with the strides riding along.
  OTHINK_CUBLAS_CHECK(cublasGemmStridedBatchedEx(
      handle, trans_b ? CUBLAS_OP_T : CUBLAS_OP_N, trans_a ? CUBLAS_OP_T : CUBLAS_OP_N, as_int(n, "n"), as_int(m, "m"),
      as_int(k, "k"), &alpha, b, type, as_int(ldb, "ldb"), static_cast<long long>(stride_b), a, type,
      as_int(lda, "lda"), static_cast<long long>(stride_a), &beta, c, c_type, as_int(ldc, "ldc"),
      static_cast<long long>(stride_c), as_int(batch, "batch"), CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT));
}

void gemm_strided_batched(bool trans_a, bool trans_b, int64_t m, int64_t n, int64_t k, float alpha, const void* a,
                          int64_t lda, int64_t stride_a, const void* b, int64_t ldb, int64_t stride_b,
                          GemmInput input, float beta, float* c, int64_t ldc, int64_t stride_c, int64_t batch,
                          cudaStream_t stream) {
  gemm_strided_batched(trans_a, trans_b, m, n, k, alpha, a, lda, stride_a, b, ldb, stride_b, input, beta, c,
                       GemmOutput::F32, ldc, stride_c, batch, stream);
}

#else  // no cuBLAS in this build

bool cublas_available() { return false; }

void gemm(bool, bool, int64_t, int64_t, int64_t, float, const void*, int64_t, const void*, int64_t, GemmInput, float,
          float*, int64_t, cudaStream_t) {
  throw std::runtime_error(
      "othink::cuda::gemm: this build of @othink/native has no cuBLAS (cublas_v2.h or libcublas was missing when "
      "it was compiled), so the fused linear log-prob kernels cannot run on the GPU; rebuild with OTHINK_CUDA=1 on "
      "a CUDA toolkit that includes cuBLAS (or point OTHINK_CUBLAS_ROOT at one)");
}

void gemm_strided_batched(bool, bool, int64_t, int64_t, int64_t, float, const void*, int64_t, int64_t, const void*,
                          int64_t, int64_t, GemmInput, float, float*, int64_t, int64_t, int64_t, cudaStream_t) {
  throw std::runtime_error(
      "othink::cuda::gemm_strided_batched: this build of @othink/native has no cuBLAS (cublas_v2.h or libcublas was "
      "missing when it was compiled), so matmul cannot run on the GPU; rebuild with OTHINK_CUDA=1 on a CUDA toolkit "
      "that includes cuBLAS (or point OTHINK_CUBLAS_ROOT at one)");
}

void gemm(bool, bool, int64_t, int64_t, int64_t, float, const void*, int64_t, const void*, int64_t, GemmInput, float,
          void*, GemmOutput, int64_t, cudaStream_t) {
  throw std::runtime_error(
      "othink::cuda::gemm: this build of @othink/native has no cuBLAS (cublas_v2.h or libcublas was missing when "
      "it was compiled), so matmul cannot run on the GPU; rebuild with OTHINK_CUDA=1 on a CUDA toolkit that "
      "includes cuBLAS (or point OTHINK_CUBLAS_ROOT at one)");
}

void gemm_strided_batched(bool, bool, int64_t, int64_t, int64_t, float, const void*, int64_t, int64_t, const void*,
                          int64_t, int64_t, GemmInput, float, void*, GemmOutput, int64_t, int64_t, int64_t,
                          cudaStream_t) {
  throw std::runtime_error(
      "othink::cuda::gemm_strided_batched: this build of @othink/native has no cuBLAS (cublas_v2.h or libcublas was "
      "missing when it was compiled), so matmul cannot run on the GPU; rebuild with OTHINK_CUDA=1 on a CUDA toolkit "
      "that includes cuBLAS (or point OTHINK_CUBLAS_ROOT at one)");
}

#endif

}  // namespace othink::cuda
