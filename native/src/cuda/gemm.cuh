// CUDA twin of cpu/gemm.h, through cuBLAS: row-major C = alpha * op(A) @ op(B) + beta * C with
// float32 or bfloat16 A and B, float32 C and float32 accumulation. TF32 is never used: float32
// results must match the CPU twin and the float64 fixtures to float32 rounding.
// Builds without cuBLAS headers too (CI has none): then gemm throws and cublas_available() is false.
#pragma once
#include <cuda_runtime_api.h>

#include <cstdint>

namespace othink::cuda {

enum class GemmInput { F32, BF16 };

// Whether this build has cuBLAS (compiled against cublas_v2.h and linked to libcublas).
bool cublas_available();

// op(A) is [M, K] (A stored [K, M] when trans_a), op(B) is [K, N] (B stored [N, K] when trans_b);
// lda / ldb / ldc are the row strides as stored; beta == 0 ignores C's contents. Device pointers,
// enqueued on `stream`. Every size must fit cuBLAS's int.
void gemm(bool trans_a, bool trans_b, int64_t m, int64_t n, int64_t k, float alpha, const void* a,
          int64_t lda, const void* b, int64_t ldb, GemmInput input, float beta, float* c, int64_t ldc,
          cudaStream_t stream);

// `batch` products C_i = alpha * op(A_i) @ op(B_i) + beta * C_i in one cuBLAS call, the matrices
// of each operand `stride_*` elements apart (stride_b = 0: one B shared by every product; the
// strides of C must keep its matrices apart). Same layout rules and precision as gemm.
void gemm_strided_batched(bool trans_a, bool trans_b, int64_t m, int64_t n, int64_t k, float alpha, const void* a,
                          int64_t lda, int64_t stride_a, const void* b, int64_t ldb, int64_t stride_b,
                          GemmInput input, float beta, float* c, int64_t ldc, int64_t stride_c, int64_t batch,
                          cudaStream_t stream);

}  // namespace othink::cuda
