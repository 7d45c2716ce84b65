// Register-blocked micro-kernel of the CPU sgemm (see gemm.cc for the blocking around it).
//
// One call computes a kRows x kNr tile of C from a packed A micro-panel ([kc][kMr], row r of the tile
// at offset r) and a packed B micro-panel ([kc][kNr], zero-padded to full width):
//   C[r][0..ncols) = alpha * sum_p A[p][r] * B[p][:] + beta * C[r][0..ncols)
// Vectors run along C's rows (contiguous in row-major), so each k step loads kNv vectors of B and
// broadcasts kRows scalars of A into kRows * kNv independent FMA accumulators.
#pragma once
#include <cstdint>

#if defined(__AVX512F__) || defined(__AVX2__)
#include <immintrin.h>
#endif

namespace othink::cpu::gemm_detail {

#if defined(__AVX512F__)
// 32 zmm registers: 14 x 2 accumulators + 2 B vectors + 1 broadcast (+1 spare). The 14 broadcasts per
// k step fold into the FMAs as {1to16} memory operands.
struct Vec {
  using T = __m512;
  static constexpr int kWidth = 16;
  static T zero() { return _mm512_setzero_ps(); }
  static T set1(float x) { return _mm512_set1_ps(x); }
  static T load(const float* p) { return _mm512_loadu_ps(p); }
  static void store(float* p, T v) { _mm512_storeu_ps(p, v); }
  static T fma(T a, T b, T c) { return _mm512_fmadd_ps(a, b, c); }
  static T mul(T a, T b) { return _mm512_mul_ps(a, b); }
  // The first n lanes (1 <= n <= kWidth); masked lanes never touch memory, so edges cannot fault.
  static T load_n(const float* p, int n) { return _mm512_maskz_loadu_ps(static_cast<__mmask16>((1u << n) - 1), p); }
  static void store_n(float* p, T v, int n) { _mm512_mask_storeu_ps(p, static_cast<__mmask16>((1u << n) - 1), v); }
};
constexpr int kMr = 14, kNv = 2;
#elif defined(__AVX2__)
// 16 ymm registers: the classic 6 x 16 tile, 12 accumulators + 2 B vectors + 1 broadcast.
struct Vec {
  using T = __m256;
  static constexpr int kWidth = 8;
  static T zero() { return _mm256_setzero_ps(); }
  static T set1(float x) { return _mm256_set1_ps(x); }
  static T load(const float* p) { return _mm256_loadu_ps(p); }
  static void store(float* p, T v) { _mm256_storeu_ps(p, v); }
  static T fma(T a, T b, T c) { return _mm256_fmadd_ps(a, b, c); }
  static T mul(T a, T b) { return _mm256_mul_ps(a, b); }
  static __m256i mask(int n) { return _mm256_cmpgt_epi32(_mm256_set1_epi32(n), _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7)); }
  static T load_n(const float* p, int n) { return _mm256_maskload_ps(p, mask(n)); }
  static void store_n(float* p, T v, int n) { _mm256_maskstore_ps(p, mask(n), v); }
};
constexpr int kMr = 6, kNv = 2;
#else
// Portable fallback: a 4 x 4 tile of scalars that any compiler keeps in registers.
struct Vec {
  using T = float;
  static constexpr int kWidth = 1;
  static T zero() { return 0.f; }
  static T set1(float x) { return x; }
  static T load(const float* p) { return *p; }
  static void store(float* p, T v) { *p = v; }
  static T fma(T a, T b, T c) { return a * b + c; }
  static T mul(T a, T b) { return a * b; }
  static T load_n(const float* p, int) { return *p; }
  static void store_n(float* p, T v, int) { *p = v; }
};
constexpr int kMr = 4, kNv = 4;
#endif
constexpr int kNr = kNv * Vec::kWidth;

// kRows <= kMr is a template argument so that the last, partial row panel of C runs a kernel of its
// own height instead of wasting FMAs on padding; columns are always computed kNr wide (B is
// zero-padded) and only the loads / stores of C are masked to ncols.
template <int kRows>
void micro_kernel(int64_t kc, const float* ap, const float* bp, float* c, int64_t ldc, int64_t ncols,
                  float alpha, float beta) {
  using V = typename Vec::T;
  // This tile of C is next read after the k loop: start fetching it now so the latency hides
  // behind the FMAs (C is often far from cache, e.g. the 151936-row weight gradient).
#pragma GCC unroll 16
  for (int r = 0; r < kRows; ++r) {
    __builtin_prefetch(c + r * ldc, 1);
    __builtin_prefetch(c + r * ldc + kNr - 1, 1);
  }
  V acc[kRows][kNv];
#pragma GCC unroll 16
  for (int r = 0; r < kRows; ++r)
#pragma GCC unroll 4
    for (int v = 0; v < kNv; ++v) acc[r][v] = Vec::zero();

  for (int64_t p = 0; p < kc; ++p, ap += kMr, bp += kNr) {
    V b[kNv];
#pragma GCC unroll 4
    for (int v = 0; v < kNv; ++v) b[v] = Vec::load(bp + v * Vec::kWidth);
#pragma GCC unroll 16
    for (int r = 0; r < kRows; ++r) {
      const V a = Vec::set1(ap[r]);
#pragma GCC unroll 4
      for (int v = 0; v < kNv; ++v) acc[r][v] = Vec::fma(a, b[v], acc[r][v]);
    }
  }

  const V va = Vec::set1(alpha), vb = Vec::set1(beta);
#pragma GCC unroll 16
  for (int r = 0; r < kRows; ++r) {
    float* cr = c + r * ldc;
#pragma GCC unroll 4
    for (int v = 0; v < kNv; ++v) {
      const int64_t lanes = ncols - v * Vec::kWidth;
      if (lanes >= Vec::kWidth) {
        // beta == 0 must not read C at all: it may hold NaN or uninitialised memory.
        Vec::store(cr, beta == 0.f ? Vec::mul(va, acc[r][v]) : Vec::fma(va, acc[r][v], Vec::mul(vb, Vec::load(cr))));
      } else if (lanes > 0) {
        const int n = static_cast<int>(lanes);
        Vec::store_n(cr, beta == 0.f ? Vec::mul(va, acc[r][v]) : Vec::fma(va, acc[r][v], Vec::mul(vb, Vec::load_n(cr, n))), n);
      }
      cr += Vec::kWidth;
    }
  }
}

}  // namespace othink::cpu::gemm_detail
