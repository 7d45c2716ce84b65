// Few-rows sgemm (see gemm_small.h). Tiles of up to 4 rows of A x 4 rows of B: 16 AVX-512
// accumulators run along K (contiguous in both), then each row of 4 outputs is reduced with one
// horizontal-add tree. Threads split the rows of B; each tile of 4 B rows (4 K floats, in L1) is
// used by every row of A before the next one is read, so B streams from memory once.
#include "cpu/gemm_small.h"

#include <omp.h>

#include <algorithm>
#include <array>
#include <utility>

#if defined(__AVX512F__) && defined(__AVX512VL__) && defined(__AVX512DQ__)
#include <immintrin.h>
#endif

namespace othink::cpu {

#if defined(__AVX512F__) && defined(__AVX512VL__) && defined(__AVX512DQ__)
namespace {

constexpr int kTile = 4;
// Below this many multiply-adds a parallel region costs more than it saves (as in gemm.cc).
constexpr int64_t kMinParallelMacs = int64_t{1} << 18;

// The sum of the 16 lanes of v, as the lowest lanes of an __m128 (4 partial sums).
inline __m128 fold(__m512 v) {
  const __m256 h = _mm256_add_ps(_mm512_extractf32x8_ps(v, 0), _mm512_extractf32x8_ps(v, 1));
  return _mm_add_ps(_mm256_castps256_ps128(h), _mm256_extractf128_ps(h, 1));
}

// C[0..R, 0..Cn) = alpha * A[0..R, :] . B[0..Cn, :] + beta * C.
template <int R, int Cn>
void tile(int64_t k, const float* a, int64_t lda, const float* b, int64_t ldb, float* c, int64_t ldc, float alpha,
          float beta) {
  __m512 acc[R][Cn];
#pragma GCC unroll 4
  for (int i = 0; i < R; ++i)
#pragma GCC unroll 4
    for (int j = 0; j < Cn; ++j) acc[i][j] = _mm512_setzero_ps();
  int64_t p = 0;
  for (; p + 16 <= k; p += 16) {
    __m512 bv[Cn];
#pragma GCC unroll 4
    for (int j = 0; j < Cn; ++j) {
      bv[j] = _mm512_loadu_ps(b + j * ldb + p);
      // Keep A and B in registers: GCC would otherwise fold a load into each FMA (20 loads, not 8).
      asm("" : "+v"(bv[j]));
    }
#pragma GCC unroll 4
    for (int i = 0; i < R; ++i) {
      __m512 av = _mm512_loadu_ps(a + i * lda + p);
      asm("" : "+v"(av));
#pragma GCC unroll 4
      for (int j = 0; j < Cn; ++j) acc[i][j] = _mm512_fmadd_ps(av, bv[j], acc[i][j]);
    }
  }
  if (p < k) {  // the K tail, masked: lanes past K are neither read nor added
    const __mmask16 mask = static_cast<__mmask16>((1u << (k - p)) - 1);
    __m512 bv[Cn];
#pragma GCC unroll 4
    for (int j = 0; j < Cn; ++j) bv[j] = _mm512_maskz_loadu_ps(mask, b + j * ldb + p);
#pragma GCC unroll 4
    for (int i = 0; i < R; ++i) {
      const __m512 av = _mm512_maskz_loadu_ps(mask, a + i * lda + p);
#pragma GCC unroll 4
      for (int j = 0; j < Cn; ++j) acc[i][j] = _mm512_fmadd_ps(av, bv[j], acc[i][j]);
    }
  }
  const __m128 va = _mm_set1_ps(alpha), vb = _mm_set1_ps(beta);
  const __mmask8 cmask = static_cast<__mmask8>((1u << Cn) - 1);
#pragma GCC unroll 4
  for (int i = 0; i < R; ++i) {
    __m128 f[kTile];
#pragma GCC unroll 4
    for (int j = 0; j < kTile; ++j) f[j] = j < Cn ? fold(acc[i][j < Cn ? j : 0]) : _mm_setzero_ps();
    const __m128 sums = _mm_hadd_ps(_mm_hadd_ps(f[0], f[1]), _mm_hadd_ps(f[2], f[3]));  // [s0, s1, s2, s3]
    float* ci = c + i * ldc;
    // beta == 0 must not read C at all: it may hold NaN or uninitialised memory.
    const __m128 out = beta == 0.f ? _mm_mul_ps(va, sums)
                                   : _mm_fmadd_ps(va, sums, _mm_mul_ps(vb, _mm_maskz_loadu_ps(cmask, ci)));
    _mm_mask_storeu_ps(ci, cmask, out);
  }
}

using TileFn = void (*)(int64_t, const float*, int64_t, const float*, int64_t, float*, int64_t, float, float);

template <int R, int... C>
constexpr std::array<TileFn, sizeof...(C)> row_of(std::integer_sequence<int, C...>) {
  return {&tile<R, C + 1>...};
}
template <int... R>
constexpr std::array<std::array<TileFn, kTile>, sizeof...(R)> table(std::integer_sequence<int, R...>) {
  return {row_of<R + 1>(std::make_integer_sequence<int, kTile>())...};
}
// kTiles[r - 1][cols - 1]: a tile of r rows of A by cols rows of B.
constexpr auto kTiles = table(std::make_integer_sequence<int, kTile>());

}  // namespace

bool sgemm_small_m(bool trans_a, bool trans_b, int64_t m, int64_t n, int64_t k, float alpha, const float* a,
                   int64_t lda, const float* b, int64_t ldb, float beta, float* c, int64_t ldc) {
  if (trans_a || !trans_b || m < 1 || m > kSmallM || n < 1 || k < 1) return false;
  const int64_t blocks = (n + kTile - 1) / kTile;
  const double macs = static_cast<double>(m) * static_cast<double>(n) * static_cast<double>(k);
  const int threads = macs < kMinParallelMacs ? 1 : omp_get_max_threads();
  // Dynamic pieces of ~16 per thread: a thread the OS preempts (the machine may be shared) holds up
  // one piece, not a static half of the work.
  const int64_t per_piece = std::max<int64_t>(1, blocks / (16 * static_cast<int64_t>(threads)));
  const int64_t pieces = (blocks + per_piece - 1) / per_piece;
#pragma omp parallel for schedule(dynamic, 1) num_threads(threads)
  for (int64_t piece = 0; piece < pieces; ++piece) {
    for (int64_t blk = piece * per_piece, end = std::min(blocks, blk + per_piece); blk < end; ++blk) {
      const int64_t j0 = blk * kTile;
      const int cols = static_cast<int>(std::min<int64_t>(kTile, n - j0));
      for (int64_t i0 = 0; i0 < m; i0 += kTile) {
        const int rows = static_cast<int>(std::min<int64_t>(kTile, m - i0));
        kTiles[rows - 1][cols - 1](k, a + i0 * lda, lda, b + j0 * ldb, ldb, c + i0 * ldc + j0, ldc, alpha, beta);
      }
    }
  }
  return true;
}

#else  // no AVX-512: the packed path handles every shape

bool sgemm_small_m(bool, bool, int64_t, int64_t, int64_t, float, const float*, int64_t, const float*, int64_t, float,
                   float*, int64_t) {
  return false;
}

#endif

}  // namespace othink::cpu
