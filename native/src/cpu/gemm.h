// Single-precision GEMM on row-major matrices: C = alpha * op(A) @ op(B) + beta * C.
#pragma once
#include <cstdint>

namespace othink::cpu {

// op(A) is [M, K] (A stored [K, M] when trans_a), op(B) is [K, N] (B stored [N, K] when trans_b).
// lda / ldb / ldc are the row strides of the matrices as stored. beta == 0 ignores C's contents.
void sgemm(bool trans_a, bool trans_b, int64_t m, int64_t n, int64_t k, float alpha, const float* a,
           int64_t lda, const float* b, int64_t ldb, float beta, float* c, int64_t ldc);

}  // namespace othink::cpu
