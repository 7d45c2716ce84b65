// GotoBLAS / BLIS-style float32 GEMM: cache-blocked loops around packed operands and a
// register-blocked micro-kernel (gemm_microkernel.h). Row-major throughout.
//
// C is cut into units (rectangles of at most kMc rows) that the threads take dynamically. For one
// unit C[i0:i1, j0:j1]:
//   pc: kKc of the depth            C += alpha * A[:, pc..] @ B[pc.., :] (beta on the first pass)
//     jc: kNc columns of op(B)      the B block, kKc x kNc, packed into kNr-column micro-panels (L2)
//       ir: one A micro-panel       kMr x kKc of the unit's A block (packed once per pc), reused ...
//         jr: ... against every B micro-panel of the block: one micro-kernel call each.
// The micro-kernel broadcasts A and streams B as vectors along C's rows, so the roles of BLIS's
// A and B swap: here the B block is the L2-resident one and the A block the larger, L3-sized one.
#include "cpu/gemm.h"

#include <omp.h>

#include <algorithm>
#include <array>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <new>
#include <utility>

#include "cpu/gemm_microkernel.h"
#include "cpu/gemm_small.h"

#if defined(__AVX__)
#include <immintrin.h>
#endif

namespace othink::cpu {
namespace {

using gemm_detail::kMr;
using gemm_detail::kNr;

// Blocking for AMD Zen 4 (32 KB L1d and 1 MB L2 per core, 32 MB shared L3):
// - kKc: the depth of one pass, long enough to amortise loading and storing the C tile (kMr x kNr)
//   over kKc * kMr * kNv FMAs. One call reads an A micro-panel (kMr x kKc, 21 KB with AVX-512) and a
//   B micro-panel (kKc x kNr, 48 KB) mostly from L2, at ~7 B / cycle, far below what L2 delivers.
// - kNc: the packed B block, kKc x kNc floats = 576 KB, stays in L2 while each A micro-panel of the
//   unit in turn sweeps across it.
// - kMc: the rows of a unit; its packed A block (kMc x kKc, 1.5 MB) sits in L2 / L3. B is packed
//   again for every unit, once per 2 * kMc flops per packed element: negligible.
// 256 to 512 for kKc and kNc measured the same within noise on the shapes of benchmarks/src/gemm.ts.
constexpr int64_t kKc = 384;
constexpr int64_t kNc = 384;
constexpr int64_t kMc = kMr * (1024 / kMr);
static_assert(kNc % kNr == 0 && kMc % kMr == 0, "blocks must hold whole micro-panels");

// Below this many multiply-adds (~5 us on one core) a parallel region costs more than it saves.
constexpr int64_t kMinParallelMacs = int64_t{1} << 18;

int64_t ceil_div(int64_t a, int64_t b) { return (a + b - 1) / b; }

#if defined(__AVX__)
// dst[j][i] = src[i][j] for an 8 x 8 block: the unpack / shuffle / lane-permute transpose.
void transpose8x8(const float* src, int64_t lds, float* dst, int64_t ldd) {
  __m256 r[8], t[8];
  for (int i = 0; i < 8; ++i) r[i] = _mm256_loadu_ps(src + i * lds);
  for (int i = 0; i < 8; i += 2) {
    t[i] = _mm256_unpacklo_ps(r[i], r[i + 1]);
    t[i + 1] = _mm256_unpackhi_ps(r[i], r[i + 1]);
  }
  for (int i = 0; i < 8; i += 4) {
    r[i] = _mm256_shuffle_ps(t[i], t[i + 2], 0x44);
    r[i + 1] = _mm256_shuffle_ps(t[i], t[i + 2], 0xEE);
    r[i + 2] = _mm256_shuffle_ps(t[i + 1], t[i + 3], 0x44);
    r[i + 3] = _mm256_shuffle_ps(t[i + 1], t[i + 3], 0xEE);
  }
  for (int i = 0; i < 4; ++i) {
    _mm256_storeu_ps(dst + i * ldd, _mm256_permute2f128_ps(r[i], r[i + 4], 0x20));
    _mm256_storeu_ps(dst + (i + 4) * ldd, _mm256_permute2f128_ps(r[i], r[i + 4], 0x31));
  }
}
#endif

// Packs one micro-panel: panel[p * width + x] = src[x * sx + p * sp] for x < lines, p < kc, and
// zeros for lines <= x < width, so the kernel may compute full-width tiles at the edges.
// One of sx / sp is 1: either each depth step is a contiguous copy (A^T, B) or the panel is a
// transpose (A, B^T), done in 8 x 8 SIMD blocks where it can (the forward x @ W^T packs W so).
void pack_panel(const float* src, int64_t sx, int64_t sp, int64_t lines, int64_t kc, int64_t width, float* dst) {
  if (sx == 1) {
    for (int64_t p = 0; p < kc; ++p) {
      std::memcpy(dst + p * width, src + p * sp, static_cast<size_t>(lines) * sizeof(float));
      std::fill(dst + p * width + lines, dst + (p + 1) * width, 0.f);
    }
    return;
  }
  int64_t x = 0;
#if defined(__AVX__)
  for (; x + 8 <= lines; x += 8) {
    int64_t p = 0;
    for (; p + 8 <= kc; p += 8) transpose8x8(src + x * sx + p, sx, dst + p * width + x, width);
    for (; p < kc; ++p)
      for (int64_t i = x; i < x + 8; ++i) dst[p * width + i] = src[i * sx + p];
  }
#endif
  for (; x < lines; ++x)
    for (int64_t p = 0; p < kc; ++p) dst[p * width + x] = src[x * sx + p];
  for (int64_t p = 0; p < kc; ++p) std::fill(dst + p * width + lines, dst + (p + 1) * width, 0.f);
}

// kKernels[r - 1] computes an r-row tile, so the last row panel of a block wastes no FMAs.
using Kernel = void (*)(int64_t, const float*, const float*, float*, int64_t, int64_t, float, float);
template <int... R>
constexpr std::array<Kernel, sizeof...(R)> kernels_for(std::integer_sequence<int, R...>) {
  return {&gemm_detail::micro_kernel<R + 1>...};
}
constexpr auto kKernels = kernels_for(std::make_integer_sequence<int, kMr>());

struct Problem {
  int64_t k;
  float alpha, beta;
  const float* a;
  int64_t a_sx, a_sp;  // op(A)(i, p) = a[i * a_sx + p * a_sp]
  const float* b;
  int64_t b_sx, b_sp;  // op(B)(p, j) = b[j * b_sx + p * b_sp]
  float* c;
  int64_t ldc;
};

// One unit, C[i0:i1, j0:j1] with i1 - i0 <= kMc, on one thread with its own packing buffers.
void gemm_unit(const Problem& pr, int64_t i0, int64_t i1, int64_t j0, int64_t j1, float* abuf, float* bbuf) {
  for (int64_t pc = 0; pc < pr.k; pc += kKc) {
    const int64_t kc = std::min(kKc, pr.k - pc);
    const float beta = pc == 0 ? pr.beta : 1.f;
    const float* a = pr.a + i0 * pr.a_sx + pc * pr.a_sp;
    for (int64_t jc = j0; jc < j1; jc += kNc) {
      const int64_t nc = std::min(kNc, j1 - jc);
      const float* b = pr.b + jc * pr.b_sx + pc * pr.b_sp;
      for (int64_t ir = 0; ir < i1 - i0; ir += kMr) {
        const int64_t rows = std::min<int64_t>(kMr, i1 - i0 - ir);
        // Each panel is packed right before its first use rather than in a separate pass: the
        // source streams in from memory while the previous micro-kernels compute, and the packed
        // copy is still in L1 when it is first read. This matters when an operand is read only
        // once, e.g. the 933 MB LM-head weight in dHidden = dLogits @ W.
        if (jc == j0) pack_panel(a + ir * pr.a_sx, pr.a_sx, pr.a_sp, rows, kc, kMr, abuf + ir * kc);
        float* crow = pr.c + (i0 + ir) * pr.ldc + jc;
        for (int64_t jr = 0; jr < nc; jr += kNr) {
          const int64_t cols = std::min<int64_t>(kNr, nc - jr);
          if (ir == 0) pack_panel(b + jr * pr.b_sx, pr.b_sx, pr.b_sp, cols, kc, kNr, bbuf + jr * kc);
          kKernels[rows - 1](kc, abuf + ir * kc, bbuf + jr * kc, crow + jr, pr.ldc, cols, pr.alpha, beta);
        }
      }
    }
  }
}

// Units are handed out dynamically so that a thread the OS preempts (the machine may be shared)
// holds up at most one unit. Whoever computes a unit packs all the A rows and B columns it touches,
// so a split costs its padded area plus the packing of its perimeter (one packed element ~ 16
// multiply-adds). So: pick the tm x tn split among the threads that minimises this (tall-skinny C
// such as 110 x 151936 splits its long side, square C whichever side keeps the pieces squarest),
// then cut each thread's piece into units of at most kMc rows and about kUnit columns, large enough
// for packing to stay near 1% of the work. Returns the number of units along M and N.
constexpr int64_t kUnit = 1024;

std::pair<int64_t, int64_t> unit_grid(int64_t m, int64_t n, int threads) {
  const int64_t mp = ceil_div(m, kMr), np = ceil_div(n, kNr);
  int64_t tm = 1;
  double best = -1;
  for (int64_t t = 1; t <= threads; ++t) {
    if (threads % t != 0) continue;
    const double rows = static_cast<double>(ceil_div(mp, t) * kMr);
    const double cols = static_cast<double>(ceil_div(np, threads / t) * kNr);
    const double cost = rows * cols + 16 * (rows + cols);
    if (best < 0 || cost < best) tm = t, best = cost;
  }
  const int64_t tn = threads / tm;
  const int64_t um = tm * ceil_div(ceil_div(mp, tm), kMc / kMr);
  const int64_t un = threads == 1 ? 1 : tn * std::max<int64_t>(1, (n / tn + kUnit / 2) / kUnit);
  return {std::min(um, mp), std::min(un, np)};
}

// Packing scratch of the calling thread, kept between calls so that repeated GEMMs neither
// allocate nor page-fault (a few MB per thread of the team).
float* scratch(size_t floats) {
  struct Free {
    void operator()(float* p) const { std::free(p); }
  };
  thread_local std::unique_ptr<float, Free> buffer;
  thread_local size_t capacity = 0;
  if (capacity < floats) {
    buffer.reset();
    capacity = 0;
    const size_t bytes = (floats * sizeof(float) + 63) / 64 * 64;
    buffer.reset(static_cast<float*>(std::aligned_alloc(64, bytes)));
    if (!buffer) throw std::bad_alloc();
    capacity = floats;
  }
  return buffer.get();
}

}  // namespace

void sgemm(bool trans_a, bool trans_b, int64_t m, int64_t n, int64_t k, float alpha, const float* a,
           int64_t lda, const float* b, int64_t ldb, float beta, float* c, int64_t ldc) {
  if (m <= 0 || n <= 0) return;
  if (k <= 0 || alpha == 0.f) {  // C = beta * C, and A / B are not read (as in BLAS)
    for (int64_t i = 0; i < m; ++i)
      for (float *x = c + i * ldc, *end = x + n; x < end; ++x) *x = beta == 0.f ? 0.f : beta * *x;
    return;
  }
  // A few rows against x @ W^T (decode steps): dot products over unpacked rows (gemm_small.cc).
  if (sgemm_small_m(trans_a, trans_b, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc)) return;
  const Problem pr{k, alpha, beta, a, trans_a ? 1 : lda, trans_a ? lda : 1,
                   b, trans_b ? ldb : 1, trans_b ? 1 : ldb, c, ldc};

  // Per-thread buffers, allocated here (outside the parallel region, which an exception must not
  // leave) for the largest blocks any unit can need.
  const double macs = static_cast<double>(m) * static_cast<double>(n) * static_cast<double>(k);
  const int max_threads = macs < kMinParallelMacs ? 1 : omp_get_max_threads();
  const int64_t kc = std::min(kKc, k);
  // Sizes rounded to 16 floats keep every slice 64-byte aligned.
  const int64_t a_floats = ceil_div(std::min(kMc, ceil_div(m, kMr) * kMr) * kc, 16) * 16;
  const int64_t per_thread = a_floats + ceil_div(std::min(kNc, ceil_div(n, kNr) * kNr) * kc, 16) * 16;
  float* buffers = scratch(static_cast<size_t>(per_thread * max_threads));

  const auto [um, un] = unit_grid(m, n, max_threads);
  const int64_t mp = ceil_div(m, kMr), np = ceil_div(n, kNr);
#pragma omp parallel num_threads(max_threads)
  {
    float* abuf = buffers + omp_get_thread_num() * per_thread;
#pragma omp for schedule(dynamic, 1)
    for (int64_t u = 0; u < um * un; ++u) {
      // Row-major unit order: consecutive units share A rows, which are then still in cache.
      const int64_t ui = u / un, uj = u % un;
      const int64_t i0 = mp * ui / um * kMr, i1 = std::min(m, mp * (ui + 1) / um * kMr);
      const int64_t j0 = np * uj / un * kNr, j1 = std::min(n, np * (uj + 1) / un * kNr);
      gemm_unit(pr, i0, i1, j0, j1, abuf, abuf + a_floats);
    }
  }
}

}  // namespace othink::cpu
