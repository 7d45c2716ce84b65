// bfloat16 GEMM on the host, the reference twin of the CUDA tensor-core path: row-major
// C = alpha * op(A) @ op(B) + beta * C with A and B bfloat16 (raw bits), C float32 or bfloat16.
// Defined as: widen A and B to float32 (exact), run sgemm (float32 accumulation), and round the
// float32 result to bfloat16 once (nearest even) when C is bfloat16. Slow (the operands are
// widened into float32 panels first) but exact in that definition, so tests compare against it.
#pragma once
#include <cstdint>

namespace othink::cpu {

// Same layout rules as sgemm (cpu/gemm.h); c is a float* or, when c_bf16, a uint16_t* of bf16
// bits. beta == 0 ignores C's contents; otherwise C is read in its own dtype (bf16 widened).
void gemm_bf16(bool trans_a, bool trans_b, int64_t m, int64_t n, int64_t k, float alpha, const uint16_t* a,
               int64_t lda, const uint16_t* b, int64_t ldb, float beta, void* c, int64_t ldc, bool c_bf16);

}  // namespace othink::cpu
