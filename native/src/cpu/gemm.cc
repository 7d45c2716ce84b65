#include "cpu/gemm.h"

#include <algorithm>
#include <vector>

namespace othink::cpu {

// Straightforward cache-blocked GEMM: B is packed row-major [K, N] per block so the inner loop is a
// contiguous axpy that the compiler vectorises. Parallel over rows of C.
void sgemm(bool trans_a, bool trans_b, int64_t m, int64_t n, int64_t k, float alpha, const float* a,
           int64_t lda, const float* b, int64_t ldb, float beta, float* c, int64_t ldc) {
  constexpr int64_t kNc = 512, kKc = 256;
  for (int64_t j0 = 0; j0 < n; j0 += kNc) {
    const int64_t nc = std::min(kNc, n - j0);
    for (int64_t p0 = 0; p0 < k; p0 += kKc) {
      const int64_t kc = std::min(kKc, k - p0);
      std::vector<float> bp(static_cast<size_t>(kc * nc));
#pragma omp parallel for
      for (int64_t p = 0; p < kc; ++p)
        for (int64_t j = 0; j < nc; ++j)
          bp[p * nc + j] = trans_b ? b[(j0 + j) * ldb + p0 + p] : b[(p0 + p) * ldb + j0 + j];
      const float cscale = p0 == 0 ? beta : 1.f;
#pragma omp parallel for schedule(static)
      for (int64_t i = 0; i < m; ++i) {
        float* crow = c + i * ldc + j0;
        if (cscale == 0.f) {
          std::fill(crow, crow + nc, 0.f);
        } else if (cscale != 1.f) {
          for (int64_t j = 0; j < nc; ++j) crow[j] *= cscale;
        }
        for (int64_t p = 0; p < kc; ++p) {
          const float av = alpha * (trans_a ? a[(p0 + p) * lda + i] : a[i * lda + p0 + p]);
          const float* brow = bp.data() + p * nc;
#pragma omp simd
          for (int64_t j = 0; j < nc; ++j) crow[j] += av * brow[j];
        }
      }
    }
  }
}

}  // namespace othink::cpu
