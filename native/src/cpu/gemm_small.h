// The few-rows case of sgemm: C = alpha * A @ B^T + beta * C with M <= kSmallM rows, B stored [N, K]
// (x @ W^T, a decode step's Linear layers and LM head). No packing: each C element is a dot product
// of two contiguous rows, and B, the large operand, is streamed from memory exactly once.
#pragma once
#include <cstdint>

namespace othink::cpu {

// At most this many rows of C take the unpacked path. The packed path packs (transposes) all of B
// for every call, which costs more than the FMAs themselves when M is small: e.g. M = 8 rows
// against the 151936 x 256 LM head ran at ~17 GFLOP/s packed.
constexpr int64_t kSmallM = 16;

// Runs the few-rows GEMM and returns true when it applies (AVX-512 F / VL / DQ build, !trans_a, trans_b,
// 1 <= m <= kSmallM); returns false (and does nothing) otherwise.
bool sgemm_small_m(bool trans_a, bool trans_b, int64_t m, int64_t n, int64_t k, float alpha, const float* a,
                   int64_t lda, const float* b, int64_t ldb, float beta, float* c, int64_t ldc);

}  // namespace othink::cpu
