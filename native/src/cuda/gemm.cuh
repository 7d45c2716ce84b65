// CUDA twin of cpu/gemm.h, through cuBLAS: row-major C = alpha * op(A) @ op(B) + beta * C with
// float32 or bfloat16 A and B, float32 (or, for bfloat16 A and B, bfloat16) C and float32
// accumulation. TF32 is never used: float32 results must match the CPU twin and the float64
// fixtures to float32 rounding (TF32 rounds the inputs to 10-bit mantissas, ~1e-3 relative error,
// which float32 training does not expect). bfloat16 inputs run on the tensor cores with
// CUBLAS_COMPUTE_32F: their 8-bit mantissas multiply exactly in float32 and sum in float32, so
// the only rounding beyond float32 accumulation is the result's (bfloat16 C); the twin of that
// path is cpu/gemm_bf16.h.
// Builds without cuBLAS headers too (CI has none): then gemm throws and cublas_available() is false.
#pragma once
#include <cuda_runtime_api.h>

#include <cstdint>

namespace othink::cuda {

enum class GemmInput { F32, BF16 };
// The dtype of C. BF16 needs GemmInput::BF16 (cuBLAS has no float32-in, bfloat16-out GEMM).
enum class GemmOutput { F32, BF16 };

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

// gemm and gemm_strided_batched with C in `output`'s dtype (c a float* or bfloat16 bits). Throws
// for GemmOutput::BF16 with GemmInput::F32.
void gemm(bool trans_a, bool trans_b, int64_t m, int64_t n, int64_t k, float alpha, const void* a, int64_t lda,
          const void* b, int64_t ldb, GemmInput input, float beta, void* c, GemmOutput output, int64_t ldc,
          cudaStream_t stream);
void gemm_strided_batched(bool trans_a, bool trans_b, int64_t m, int64_t n, int64_t k, float alpha, const void* a,
                          int64_t lda, int64_t stride_a, const void* b, int64_t ldb, int64_t stride_b,
                          GemmInput input, float beta, void* c, GemmOutput output, int64_t ldc, int64_t stride_c,
                          int64_t batch, cudaStream_t stream);

}  // namespace othink::cuda
