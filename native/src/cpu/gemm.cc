// GotoBLAS / BLIS-style float32 GEMM: cache-blocked loops around packed operands and a
// register-blocked micro-kernel (gemm_microkernel.h).
//
// Loop nest of one thread over its rectangle of C (row-major throughout):
//   ic: kMc rows of op(A)         pack A[ic.., pc..] into kMr-row micro-panels   (L3-sized block)
//     pc: kKc of the depth          C += alpha * A_block @ B_block (beta on the first pass only)
//       jc: kNc columns of op(B)  pack B[pc.., jc..] into kNr-column micro-panels (L2-sized block)
//         ir: one A micro-panel (kMr x kKc) is reused against ...
//           jr: ... every B micro-panel (kKc x kNr) of the block, one micro-kernel call each.
// The micro-kernel broadcasts A and streams B as vectors along C's rows, so the roles of BLIS's
// A and B swap: here the B block is the L2-resident one and the A block the L3-sized one.
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

#if defined(__AVX__)
#include <immintrin.h>
#endif

namespace othink::cpu {
namespace {

using gemm_detail::kMr;
using gemm_detail::kNr;

// Blocking for AMD Zen 4 (32 KB L1d and 1 MB L2 per core, 32 MB shared L3), set by measurement:
// - kKc: the depth of one pass. A larger kKc amortises the load / store of the C tile over more FMAs;
//   an A micro-panel (kMr x kKc = 21 KB with AVX-512) plus the B lines in flight still fit in L1.
// - kNc: the packed B block, kKc x kNc floats = 576 KB, stays in L2 while every A micro-panel of the
//   A block streams past it.
// - kMc: the packed A block, ~1.5 MB per thread in L3; B is packed again for every kMc rows of C,
//   i.e. once per 2 * kMc flops per packed element, which makes repacking negligible.
constexpr int64_t kKc = 384;
constexpr int64_t kNc = 384;
constexpr int64_t kMc = kMr * (1024 / kMr);
static_assert(kNc % kNr == 0 && kMc % kMr == 0, "blocks must hold whole micro-panels");

// Below this many multiply-adds (~10 us on one core) a parallel region costs more than it saves.
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

// Packs `lines` x kc of a matrix (element (x, p) at src[x * sx + p * sp]) into consecutive
// micro-panels of `width` lines, each stored depth-major: panel[p * width + x]. Lines past `lines`
// are zero, so the kernel may compute full-width tiles at the edges. One of sx / sp is 1:
// - sx == 1 (A^T, B): each depth step is a contiguous run; walk it a whole row at a time, as rows
//   of a large matrix (the 151936-row LM head) are far apart and only a sequential read streams.
// - sp == 1 (A, B^T): a transpose, in 8 x 8 SIMD blocks where it can (x @ W^T packs W this way).
void pack_block(const float* src, int64_t sx, int64_t sp, int64_t lines, int64_t kc, int64_t width, float* dst) {
  if (sx == 1) {
    for (int64_t p = 0; p < kc; ++p) {
      for (int64_t x0 = 0; x0 < lines; x0 += width) {
        const int64_t w = std::min(width, lines - x0);
        float* d = dst + x0 * kc + p * width;
        std::memcpy(d, src + p * sp + x0, static_cast<size_t>(w) * sizeof(float));
        std::fill(d + w, d + width, 0.f);
      }
    }
    return;
  }
  for (int64_t x0 = 0; x0 < lines; x0 += width) {
    float* panel = dst + x0 * kc;
    const int64_t w = std::min(width, lines - x0);
    int64_t x = 0;
#if defined(__AVX__)
    for (; x + 8 <= w; x += 8) {
      int64_t p = 0;
      for (; p + 8 <= kc; p += 8) transpose8x8(src + (x0 + x) * sx + p, sx, panel + p * width + x, width);
      for (; p < kc; ++p)
        for (int64_t i = x; i < x + 8; ++i) panel[p * width + i] = src[(x0 + i) * sx + p];
    }
#endif
    for (; x < w; ++x)
      for (int64_t p = 0; p < kc; ++p) panel[p * width + x] = src[(x0 + x) * sx + p];
    for (int64_t p = 0; p < kc; ++p) std::fill(panel + p * width + w, panel + (p + 1) * width, 0.f);
  }
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

// C[i0:i1, j0:j1] on one thread, with its own packing buffers (no sharing, no barriers).
void gemm_rect(const Problem& pr, int64_t i0, int64_t i1, int64_t j0, int64_t j1, float* abuf, float* bbuf) {
  for (int64_t ic = i0; ic < i1; ic += kMc) {
    const int64_t mc = std::min(kMc, i1 - ic);
    for (int64_t pc = 0; pc < pr.k; pc += kKc) {
      const int64_t kc = std::min(kKc, pr.k - pc);
      const float beta = pc == 0 ? pr.beta : 1.f;
      pack_block(pr.a + ic * pr.a_sx + pc * pr.a_sp, pr.a_sx, pr.a_sp, mc, kc, kMr, abuf);
      for (int64_t jc = j0; jc < j1; jc += kNc) {
        const int64_t nc = std::min(kNc, j1 - jc);
        pack_block(pr.b + jc * pr.b_sx + pc * pr.b_sp, pr.b_sx, pr.b_sp, nc, kc, kNr, bbuf);
        for (int64_t ir = 0; ir < mc; ir += kMr) {
          const Kernel kernel = kKernels[std::min<int64_t>(kMr, mc - ir) - 1];
          float* crow = pr.c + (ic + ir) * pr.ldc + jc;
          for (int64_t jr = 0; jr < nc; jr += kNr)
            kernel(kc, abuf + ir * kc, bbuf + jr * kc, crow + jr, pr.ldc, std::min<int64_t>(kNr, nc - jr), pr.alpha, beta);
        }
      }
    }
  }
}

// Splits C into a tm x tn grid of per-thread rectangles. Each thread packs all of the A rows and
// B columns its rectangle touches, so the cost of a split is its (padded) area plus the packing
// of its perimeter: tall-skinny C (110 x 151936) splits the long side, square C whichever side
// keeps the tiles squarest. One packed element costs about as much as 16 multiply-adds.
std::pair<int, int> thread_grid(int64_t m, int64_t n, int threads) {
  std::pair<int, int> best{1, threads};
  double best_cost = -1;
  for (int tm = 1; tm <= threads; ++tm) {
    if (threads % tm != 0) continue;
    const int tn = threads / tm;
    const double rows = static_cast<double>(ceil_div(ceil_div(m, kMr), tm) * kMr);
    const double cols = static_cast<double>(ceil_div(ceil_div(n, kNr), tn) * kNr);
    const double cost = rows * cols + 16 * (rows + cols);
    if (best_cost < 0 || cost < best_cost) best = {tm, tn}, best_cost = cost;
  }
  return best;
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
  const Problem pr{k,       alpha, beta, a, trans_a ? 1 : lda, trans_a ? lda : 1, b, trans_b ? ldb : 1,
                   trans_b ? 1 : ldb, c, ldc};

  // Per-thread buffers, allocated here (outside the parallel region, where an exception may
  // propagate) for the largest blocks any rectangle can need.
  const int max_threads = m * n * k < kMinParallelMacs ? 1 : omp_get_max_threads();
  const int64_t kc = std::min(kKc, k);
  // Sizes rounded to 16 floats keep every slice 64-byte aligned.
  const int64_t a_floats = ceil_div(std::min(kMc, ceil_div(m, kMr) * kMr) * kc, 16) * 16;
  const int64_t per_thread = a_floats + ceil_div(std::min(kNc, ceil_div(n, kNr) * kNr) * kc, 16) * 16;
  float* buffers = scratch(static_cast<size_t>(per_thread * max_threads));

#pragma omp parallel num_threads(max_threads)
  {
    // The team may be smaller than asked (nested call, thread limit): split among who is here.
    const int threads = omp_get_num_threads(), t = omp_get_thread_num();
    const auto [tm, tn] = thread_grid(m, n, threads);
    const int ti = t / tn, tj = t % tn;
    // Whole micro-panels per thread, spread evenly; only the last rectangle has ragged edges.
    const int64_t mp = ceil_div(m, kMr), np = ceil_div(n, kNr);
    const int64_t i0 = std::min(m, mp * ti / tm * kMr), i1 = std::min(m, mp * (ti + 1) / tm * kMr);
    const int64_t j0 = std::min(n, np * tj / tn * kNr), j1 = std::min(n, np * (tj + 1) / tn * kNr);
    float* abuf = buffers + t * per_thread;
    if (i0 < i1 && j0 < j1) gemm_rect(pr, i0, i1, j0, j1, abuf, abuf + a_floats);
  }
}

}  // namespace othink::cpu
