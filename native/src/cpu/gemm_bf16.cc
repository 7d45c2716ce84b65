#include "cpu/gemm_bf16.h"

#include <algorithm>
#include <vector>

#include "cpu/cast.h"
#include "cpu/gemm.h"

namespace othink::cpu {
namespace {

// Rows of op(A) widened per sgemm call: enough for sgemm's parallel units (it splits C by rows),
// few enough that the float32 panels of A and C stay near 16 MB each whatever m is.
constexpr int64_t kPanelFloats = int64_t{1} << 22;

// dst[r * cols + c] = src[r * ld + c] widened, for r < rows.
void widen_rows(const uint16_t* src, int64_t ld, int64_t rows, int64_t cols, float* dst) {
#pragma omp parallel for schedule(static) if (rows * cols > (1 << 16))
  for (int64_t r = 0; r < rows; ++r)
    for (int64_t c = 0; c < cols; ++c) dst[r * cols + c] = bf16_to_float(src[r * ld + c]);
}

}  // namespace

void gemm_bf16(bool trans_a, bool trans_b, int64_t m, int64_t n, int64_t k, float alpha, const uint16_t* a,
               int64_t lda, const uint16_t* b, int64_t ldb, float beta, void* c, int64_t ldc, bool c_bf16) {
  if (m <= 0 || n <= 0) return;
  // B widened whole, in its stored layout ([K, N], or [N, K] when trans_b) with packed rows.
  const int64_t b_rows = trans_b ? n : k, b_cols = trans_b ? k : n;
  std::vector<float> bw(static_cast<size_t>(b_rows * b_cols));
  widen_rows(b, ldb, b_rows, b_cols, bw.data());

  const int64_t panel = std::max<int64_t>(1, std::min<int64_t>(m, kPanelFloats / std::max<int64_t>({k, n, 1})));
  std::vector<float> aw(static_cast<size_t>(panel * k));
  std::vector<float> cw(c_bf16 ? static_cast<size_t>(panel * n) : 0);
  for (int64_t i0 = 0; i0 < m; i0 += panel) {
    const int64_t rows = std::min(panel, m - i0);
    // The panel's rows of op(A), [rows, K] untransposed (A^T's columns are strided in memory).
    if (trans_a) {
#pragma omp parallel for schedule(static) if (rows * k > (1 << 16))
      for (int64_t r = 0; r < rows; ++r)
        for (int64_t p = 0; p < k; ++p) aw[r * k + p] = bf16_to_float(a[p * lda + i0 + r]);
    } else {
      widen_rows(a + i0 * lda, lda, rows, k, aw.data());
    }
    if (!c_bf16) {
      sgemm(false, trans_b, rows, n, k, alpha, aw.data(), k, bw.data(), b_cols, beta, static_cast<float*>(c) + i0 * ldc,
            ldc);
      continue;
    }
    uint16_t* c16 = static_cast<uint16_t*>(c) + i0 * ldc;
    if (beta != 0) widen_rows(c16, ldc, rows, n, cw.data());
    sgemm(false, trans_b, rows, n, k, alpha, aw.data(), k, bw.data(), b_cols, beta, cw.data(), n);
    // The one rounding of the result.
#pragma omp parallel for schedule(static) if (rows * n > (1 << 16))
    for (int64_t r = 0; r < rows; ++r)
      for (int64_t j = 0; j < n; ++j) c16[r * ldc + j] = float_to_bf16(cw[r * n + j]);
  }
}

}  // namespace othink::cpu
