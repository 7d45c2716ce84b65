// Flash-style attention on the CPU (Dao et al., FlashAttention-2, adapted to a few fat cores).
//
// Forward, one task per (batch, query head, block of kBlockQ queries), dynamically scheduled:
//   S = (scale Q_blk) K_blk^T   for key blocks of kBlockK that some row of the block can see,
//   masked entries -inf, then the online softmax: running max m and sum l per row, P = exp(S - m),
//   O = O e^(m_old - m) + P V_blk;  at the end O / l and lse = m + log l.
// Backward, one task per (batch, query head), recomputing P = exp(S - lse) block by block:
//   dV += P^T dO,  dP = dO V^T,  dS = P (dP - rowsum(dO * O)),  dQ += dS K scale,  dK += dS^T Q scale.
// A task owns its query head's dQ and writes dK / dV of that head into a private [Sk, D] buffer;
// the query heads of a GQA group are summed afterwards (no atomics, deterministic).
//
// The five products run on one register-blocked micro-kernel (8 rows x 32 columns, 16 vector
// accumulators) over operands laid out once per call: K and V transposed into 32-key panels
// ([D][32] each) for the products against K^T / V^T, and row-major copies padded to a multiple of
// 32 columns for the products against K / V. Packing is O(S D); the products are O(S^2 D).
#include "cpu/attention.h"

#include <omp.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>
#include <vector>

#include "cpu/simd.h"

namespace othink::cpu {

namespace {
using simd::f32v;
using simd::kLanes;

constexpr float kNegInf = -std::numeric_limits<float>::infinity();
// Micro-tile: kTileRows rows x kPanel columns (two 16-lane vectors) of C in registers.
constexpr int64_t kPanel = 2 * kLanes;
constexpr int kTileRows = 8;
// Blocks: a 64 x 64 score tile is 16 KB, Q and O blocks 32 KB each at D = 128 (L1 / L2 resident).
constexpr int64_t kBlockQ = 64;
constexpr int64_t kBlockK = 64;
static_assert(kBlockK % kPanel == 0, "key blocks are whole panels");
// Below this many multiply-adds a parallel region costs more than it saves.
constexpr int64_t kMinParallelMacs = int64_t{1} << 18;

// A register broadcast. (simd::splat(x) is f32v{} + x, which keeps a scalar x + 0.f in front of
// every broadcast, since -0.f + 0.f is not -0.f; in the micro-kernel's inner loop that add costs.)
inline f32v bcast(float x) { return f32v{x, x, x, x, x, x, x, x, x, x, x, x, x, x, x, x}; }
static_assert(kLanes == 16, "bcast spells out 16 lanes");

int64_t ceil_div(int64_t a, int64_t b) { return (a + b - 1) / b; }
int64_t round_up(int64_t a, int64_t b) { return ceil_div(a, b) * b; }

// C[r][0:16V) = (accumulate ? C[r][0:16V) : 0) + sum_{p < kc} A(r, p) * B[p][0:16V) for r < R,
// with A(r, p) = a[r * a_rs + p * a_ps] (broadcast, any layout: Q, P, P^T or K in place) and B rows
// ldb apart; V vectors of 16 columns (R x V accumulators in registers).
template <int R, int V>
inline void tile(int64_t kc, const float* a, int64_t a_rs, int64_t a_ps, const float* b, int64_t ldb, float* c,
                 int64_t ldc, bool accumulate) {
  f32v acc[R][V];
#pragma GCC unroll 8
  for (int r = 0; r < R; ++r)
#pragma GCC unroll 2
    for (int x = 0; x < V; ++x) acc[r][x] = simd::splat(0.f);
  for (int64_t p = 0; p < kc; ++p) {
    f32v bv[V];
#pragma GCC unroll 2
    for (int x = 0; x < V; ++x) bv[x] = simd::load(b + p * ldb + x * kLanes);
    const float* ap = a + p * a_ps;
#pragma GCC unroll 8
    for (int r = 0; r < R; ++r) {
      const f32v av = bcast(ap[r * a_rs]);
#pragma GCC unroll 2
      for (int x = 0; x < V; ++x) acc[r][x] += av * bv[x];
    }
  }
#pragma GCC unroll 8
  for (int r = 0; r < R; ++r) {
    float* cr = c + r * ldc;
#pragma GCC unroll 2
    for (int x = 0; x < V; ++x)
      simd::store(cr + x * kLanes, accumulate ? simd::load(cr + x * kLanes) + acc[r][x] : acc[r][x]);
  }
}

// C[rows][cols] (+)= A (rows x kc) @ B (kc x cols); cols is a multiple of 16 V and column panel t
// of B starts at b + t * b_cs (rows ldb apart): b_cs = kPanel for a row-major B, D * kPanel for K / V
// packed in key panels. Panels outer, so one B panel stays in L1 while the row tiles sweep it.
template <int V = 2>
void matmul_tiles(int64_t rows, int64_t cols, int64_t kc, const float* a, int64_t a_rs, int64_t a_ps,
                  const float* b, int64_t ldb, int64_t b_cs, float* c, int64_t ldc, bool accumulate) {
  constexpr int64_t kWidth = V * kLanes;
  for (int64_t c0 = 0; c0 < cols; c0 += kWidth) {
    const float* bp = b + (c0 / kWidth) * b_cs;
    for (int64_t r0 = 0; r0 < rows; r0 += kTileRows) {
      const float* ap = a + r0 * a_rs;
      float* cp = c + r0 * ldc + c0;
      switch (std::min<int64_t>(kTileRows, rows - r0)) {
        case 8: tile<8, V>(kc, ap, a_rs, a_ps, bp, ldb, cp, ldc, accumulate); break;
        case 7: tile<7, V>(kc, ap, a_rs, a_ps, bp, ldb, cp, ldc, accumulate); break;
        case 6: tile<6, V>(kc, ap, a_rs, a_ps, bp, ldb, cp, ldc, accumulate); break;
        case 5: tile<5, V>(kc, ap, a_rs, a_ps, bp, ldb, cp, ldc, accumulate); break;
        case 4: tile<4, V>(kc, ap, a_rs, a_ps, bp, ldb, cp, ldc, accumulate); break;
        case 3: tile<3, V>(kc, ap, a_rs, a_ps, bp, ldb, cp, ldc, accumulate); break;
        case 2: tile<2, V>(kc, ap, a_rs, a_ps, bp, ldb, cp, ldc, accumulate); break;
        default: tile<1, V>(kc, ap, a_rs, a_ps, bp, ldb, cp, ldc, accumulate); break;
      }
    }
  }
}

// Buffers of the calling thread kept between calls, by slot: repeated calls (every layer, every
// step) neither allocate nor page-fault on fresh memory. Like the sgemm's packing scratch, they
// stay at the largest size used (tens of MB for 2K-token sequences); contents are not preserved.
enum Slot { kSlotK, kSlotV, kSlotKRows, kSlotDk, kSlotDv, kSlotScratch, kSlots };
float* workspace(Slot slot, size_t floats) {
  thread_local std::vector<float> buffers[kSlots];
  std::vector<float>& b = buffers[slot];
  if (b.size() < floats) {
    b.clear();
    b.shrink_to_fit();
    b.resize(floats);
  }
  return b.data();
}

// Sizes derived once per call.
struct Geometry {
  int64_t B, Sq, Sk, Hq, Hkv, D, group;
  int64_t skp;  // Sk rounded up to whole key panels
  int64_t dp;   // D rounded up to whole column panels
  explicit Geometry(const AttentionShape& s)
      : B(s.batch), Sq(s.seq_q), Sk(s.seq_k), Hq(s.heads_q), Hkv(s.heads_kv), D(s.dim), group(s.heads_q / s.heads_kv),
        skp(round_up(s.seq_k, kPanel)), dp(round_up(s.dim, kPanel)) {}
  // Element (b, j, head, 0) of a [B, S, H, D] tensor.
  static int64_t at(int64_t b, int64_t j, int64_t head, int64_t seq, int64_t heads, int64_t dim) {
    return ((b * seq + j) * heads + head) * dim;
  }
  bool parallel() const { return B * Hq * Sq * Sk * D > kMinParallelMacs; }
};

// K or V [B, Sk, Hkv, D] as [B * Hkv][skp / 32][D][32]: key panels, transposed, zero past Sk. A
// product against K^T then reads B[p = d][32 keys] as two contiguous vectors.
const float* pack_panels(const float* x, const Geometry& g, Slot slot) {
  const int64_t panels = g.skp / kPanel;
  float* dst = workspace(slot, static_cast<size_t>(g.B * g.Hkv * g.skp * g.D));
#pragma omp parallel for collapse(2) if (g.parallel()) schedule(static)
  for (int64_t bh = 0; bh < g.B * g.Hkv; ++bh) {
    for (int64_t jp = 0; jp < panels; ++jp) {
      const int64_t b = bh / g.Hkv, hk = bh % g.Hkv;
      float* panel = dst + (bh * panels + jp) * g.D * kPanel;
      for (int64_t c = 0; c < kPanel; ++c) {
        const int64_t j = jp * kPanel + c;
        const float* row = j < g.Sk ? x + Geometry::at(b, j, hk, g.Sk, g.Hkv, g.D) : nullptr;
        for (int64_t d = 0; d < g.D; ++d) panel[d * kPanel + c] = row ? row[d] : 0.f;
      }
    }
  }
  return dst;
}

// K or V [B, Sk, Hkv, D] as row-major [B * Hkv][skp][dp], zero padded, for products against K / V.
const float* pack_rows(const float* x, const Geometry& g, Slot slot) {
  float* dst = workspace(slot, static_cast<size_t>(g.B * g.Hkv * g.skp * g.dp));
#pragma omp parallel for collapse(2) if (g.parallel()) schedule(static)
  for (int64_t bh = 0; bh < g.B * g.Hkv; ++bh) {
    for (int64_t j = 0; j < g.skp; ++j) {
      const int64_t b = bh / g.Hkv, hk = bh % g.Hkv;
      float* row = dst + (bh * g.skp + j) * g.dp;
      if (j < g.Sk) std::copy_n(x + Geometry::at(b, j, hk, g.Sk, g.Hkv, g.D), g.D, row);
      std::fill(row + (j < g.Sk ? g.D : 0), row + g.dp, 0.f);
    }
  }
  return dst;
}

// The keys [lo, hi) query i may see by causality and segment (the key mask comes on top).
struct KeyRange {
  int64_t lo, hi;
};

KeyRange key_range(const Geometry& g, const AttentionMask& m, int64_t i) {
  int64_t lo = 0, hi = g.Sk;
  if (m.cu_seqlens) {
    // The segment holding i: the last boundary <= i (the binding checked the boundaries).
    const int32_t* end = m.cu_seqlens + m.segments + 1;
    const int64_t s = std::upper_bound(m.cu_seqlens, end, static_cast<int32_t>(i)) - m.cu_seqlens - 1;
    lo = m.cu_seqlens[s];
    hi = m.cu_seqlens[s + 1];
  }
  if (m.causal) hi = std::min(hi, i + g.Sk - g.Sq + 1);
  return {lo, std::max(lo, hi)};
}

// The rows [i0, i0 + nr) of a query block: their key ranges and the union [*jmin, *jmax) of them.
void block_ranges(const Geometry& g, const AttentionMask& m, int64_t i0, int64_t nr, KeyRange* ranges,
                  int64_t* jmin, int64_t* jmax) {
  *jmin = g.Sk;
  *jmax = 0;
  for (int64_t r = 0; r < nr; ++r) {
    ranges[r] = key_range(g, m, i0 + r);
    if (ranges[r].lo < ranges[r].hi) {
      *jmin = std::min(*jmin, ranges[r].lo);
      *jmax = std::max(*jmax, ranges[r].hi);
    }
  }
}

// Sets S[r][c] = -inf where key j0 + c is hidden from row r (outside its range, or masked).
void mask_scores(float* s, int64_t nr, int64_t kcols, int64_t j0, const KeyRange* ranges, const int32_t* key_mask) {
  for (int64_t r = 0; r < nr; ++r) {
    float* sr = s + r * kBlockK;
    const int64_t a = std::clamp<int64_t>(ranges[r].lo - j0, 0, kcols);
    const int64_t e = std::clamp<int64_t>(ranges[r].hi - j0, a, kcols);
    std::fill(sr, sr + a, kNegInf);
    std::fill(sr + e, sr + kcols, kNegInf);
    if (key_mask)
      for (int64_t c = a; c < e; ++c)
        if (key_mask[j0 + c] == 0) sr[c] = kNegInf;
  }
}

struct ForwardScratch {
  float *qs, *s, *o, *m, *l;
  KeyRange* ranges;
};

// One block of queries [i0, i0 + nr) of head h in batch b.
void forward_block(const float* q, const float* kp, const float* vn, const Geometry& g, const AttentionMask& mask,
                   float scale, int64_t b, int64_t h, int64_t i0, int64_t nr, const ForwardScratch& w, float* out,
                   float* lse) {
  const int64_t hk = h / g.group;
  for (int64_t r = 0; r < nr; ++r) {
    const float* src = q + Geometry::at(b, i0 + r, h, g.Sq, g.Hq, g.D);
    for (int64_t d = 0; d < g.D; ++d) w.qs[r * g.D + d] = src[d] * scale;
  }
  int64_t jmin, jmax;
  block_ranges(g, mask, i0, nr, w.ranges, &jmin, &jmax);
  std::fill(w.m, w.m + nr, kNegInf);
  std::fill(w.l, w.l + nr, 0.f);
  std::fill(w.o, w.o + nr * g.dp, 0.f);
  const float* kpb = kp + (b * g.Hkv + hk) * g.skp * g.D;
  const float* vnb = vn + (b * g.Hkv + hk) * g.skp * g.dp;
  const int32_t* key_mask = mask.key_mask ? mask.key_mask + b * g.Sk : nullptr;
  for (int64_t j0 = jmin / kPanel * kPanel; j0 < jmax; j0 += kBlockK) {
    const int64_t kcols = std::min(kBlockK, g.skp - j0);
    matmul_tiles(nr, kcols, g.D, w.qs, g.D, 1, kpb + j0 * g.D, kPanel, g.D * kPanel, w.s, kBlockK, false);
    mask_scores(w.s, nr, kcols, j0, w.ranges, key_mask);
    for (int64_t r = 0; r < nr; ++r) {
      float* sr = w.s + r * kBlockK;
      f32v vmax = simd::splat(kNegInf);
      for (int64_t c = 0; c < kcols; c += kLanes) vmax = simd::max(vmax, simd::load(sr + c));
      const float m_new = std::max(w.m[r], simd::reduce_max(vmax));
      if (m_new == kNegInf) {  // nothing visible yet: P = 0 (exp(-inf - -inf) would be NaN)
        std::fill(sr, sr + kcols, 0.f);
        continue;
      }
      const f32v vm = simd::splat(m_new);
      f32v sum = simd::splat(0.f);
      for (int64_t c = 0; c < kcols; c += kLanes) {
        const f32v p = simd::exp(simd::load(sr + c) - vm);  // exp(-inf) == 0 for hidden keys
        simd::store(sr + c, p);
        sum += p;
      }
      const float alpha = w.m[r] == kNegInf ? 0.f : simd::exp(w.m[r] - m_new);
      w.l[r] = w.l[r] * alpha + simd::reduce_add(sum);
      w.m[r] = m_new;
      if (alpha != 1.f) {
        float* orow = w.o + r * g.dp;
        for (int64_t d = 0; d < g.dp; ++d) orow[d] *= alpha;
      }
    }
    matmul_tiles(nr, g.dp, kcols, w.s, kBlockK, 1, vnb + j0 * g.dp, g.dp, kPanel, w.o, g.dp, true);
  }
  for (int64_t r = 0; r < nr; ++r) {
    float* dst = out + Geometry::at(b, i0 + r, h, g.Sq, g.Hq, g.D);
    float* row_lse = lse + (b * g.Hq + h) * g.Sq + i0 + r;
    if (w.l[r] > 0.f) {
      const float inv = 1.f / w.l[r];
      for (int64_t d = 0; d < g.D; ++d) dst[d] = w.o[r * g.dp + d] * inv;
      *row_lse = w.m[r] + std::log(w.l[r]);
    } else {  // no visible key: a defined 0 (see attention.h)
      std::fill(dst, dst + g.D, 0.f);
      *row_lse = kNegInf;
    }
  }
}

// Few queries against many keys (a decode step against the KV cache). Packing K and V would cost
// more than the products, and each kv head is shared by a GQA group of query heads, so a task is
// one (batch, kv head) and its rows are the group's queries, up to kPanel at a time:
//   S^T [keys][rows] = K Q^T with the micro-kernel, K read in place (broadcast along its rows) and
//   Q^T a [D][32] panel; masking and a two-pass softmax per column, vectorised across the rows;
//   O[row] += p v_j with v_j read in place. K and V are read once per panel of rows.
void forward_few_queries(const float* q, const float* k, const float* v, const Geometry& g, const AttentionMask& mask,
                         float scale, float* out, float* lse) {
  const int64_t rows = g.group * g.Sq;  // row r: query head hk * group + r / Sq, query r % Sq
  const int threads = g.parallel() ? omp_get_max_threads() : 1;
  const int64_t per_thread = g.D * kPanel + g.Sk * kPanel + kPanel * g.D;
  float* scratch = workspace(kSlotScratch, static_cast<size_t>(threads * per_thread));
  const int64_t ldk = g.Hkv * g.D;
#pragma omp parallel num_threads(threads)
  {
    float* qt = scratch + omp_get_thread_num() * per_thread;  // [D][32] scaled Q^T
    float* st = qt + g.D * kPanel;                                     // [keys][32] scores, then P
    float* acc = st + g.Sk * kPanel;                                   // [32][D] unnormalised output
#pragma omp for collapse(2) schedule(dynamic, 1)
    for (int64_t bk = 0; bk < g.B * g.Hkv; ++bk) {
      for (int64_t r0 = 0; r0 < rows; r0 += kPanel) {
        const int64_t b = bk / g.Hkv, hk = bk % g.Hkv, nr = std::min(kPanel, rows - r0);
        auto head_of = [&](int64_t c) { return hk * g.group + (r0 + c) / g.Sq; };
        auto query_of = [&](int64_t c) { return (r0 + c) % g.Sq; };
        alignas(64) int32_t lo[kPanel], hi[kPanel];
        int64_t jmin = g.Sk, jmax = 0;
        for (int64_t c = 0; c < kPanel; ++c) {
          KeyRange range{0, 0};  // padding columns see nothing
          if (c < nr) range = key_range(g, mask, query_of(c));
          lo[c] = static_cast<int32_t>(range.lo);
          hi[c] = static_cast<int32_t>(range.hi);
          if (range.lo < range.hi) jmin = std::min(jmin, range.lo), jmax = std::max(jmax, range.hi);
          const float* src = c < nr ? q + Geometry::at(b, query_of(c), head_of(c), g.Sq, g.Hq, g.D) : nullptr;
          for (int64_t d = 0; d < g.D; ++d) qt[d * kPanel + c] = src ? src[d] * scale : 0.f;
        }
        const int64_t nk = std::max<int64_t>(jmax - jmin, 0);
        const float* kfirst = k + Geometry::at(b, std::min(jmin, g.Sk - 1), hk, g.Sk, g.Hkv, g.D);
        // Up to 16 rows (a decode step of a GQA group): one vector of columns, half the FMAs. The
        // columns left unwritten are padding, hidden below whatever they hold.
        if (nk > 0 && nr <= kLanes) matmul_tiles<1>(nk, kLanes, g.D, kfirst, ldk, 1, qt, kPanel, 0, st, kPanel, false);
        else if (nk > 0) matmul_tiles<2>(nk, kPanel, g.D, kfirst, ldk, 1, qt, kPanel, 0, st, kPanel, false);
        // Hide what each column may not see, and find the column maxima.
        const int32_t* key_mask = mask.key_mask ? mask.key_mask + b * g.Sk : nullptr;
        simd::i32v vlo[2], vhi[2];
        std::memcpy(vlo, lo, sizeof vlo);
        std::memcpy(vhi, hi, sizeof vhi);
        f32v vmax[2] = {simd::splat(kNegInf), simd::splat(kNegInf)};
        const f32v neg_inf = simd::splat(kNegInf);
        for (int64_t j = jmin; j < jmax; ++j) {
          float* srow = st + (j - jmin) * kPanel;
          const bool masked = key_mask && key_mask[j] == 0;
          for (int half = 0; half < 2; ++half) {
            const simd::i32v vj = simd::i32v{} + static_cast<int32_t>(j);
            const simd::i32v visible = (vlo[half] <= vj) & (vj < vhi[half]);
            const f32v sv = masked ? neg_inf : (visible ? simd::load(srow + half * kLanes) : neg_inf);
            simd::store(srow + half * kLanes, sv);
            vmax[half] = simd::max(vmax[half], sv);
          }
        }
        // P = exp(S - max) (columns with nothing visible: centre 0, so exp(-inf) = 0, not NaN).
        f32v centre[2], sum[2] = {simd::splat(0.f), simd::splat(0.f)};
        for (int half = 0; half < 2; ++half) centre[half] = vmax[half] == neg_inf ? simd::splat(0.f) : vmax[half];
        for (int64_t j = jmin; j < jmax; ++j) {
          float* srow = st + (j - jmin) * kPanel;
          for (int half = 0; half < 2; ++half) {
            const f32v p = simd::exp(simd::load(srow + half * kLanes) - centre[half]);
            simd::store(srow + half * kLanes, p);
            sum[half] += p;
          }
        }
        std::fill(acc, acc + nr * g.D, 0.f);
        for (int64_t j = jmin; j < jmax; ++j) {
          const float* srow = st + (j - jmin) * kPanel;
          const float* vj = v + Geometry::at(b, j, hk, g.Sk, g.Hkv, g.D);
          for (int64_t c = 0; c < nr; ++c) {
            const float p = srow[c];
            if (p == 0.f) continue;
            float* ac = acc + c * g.D;
#pragma omp simd
            for (int64_t d = 0; d < g.D; ++d) ac[d] += p * vj[d];
          }
        }
        for (int64_t c = 0; c < nr; ++c) {
          const int64_t h = head_of(c), i = query_of(c);
          const float m = vmax[c / kLanes][c % kLanes], l = sum[c / kLanes][c % kLanes];
          float* dst = out + Geometry::at(b, i, h, g.Sq, g.Hq, g.D);
          float* row_lse = lse + (b * g.Hq + h) * g.Sq + i;
          if (m == kNegInf) {  // no visible key (see attention.h)
            std::fill(dst, dst + g.D, 0.f);
            *row_lse = kNegInf;
            continue;
          }
          const float inv = 1.f / l;
          for (int64_t d = 0; d < g.D; ++d) dst[d] = acc[c * g.D + d] * inv;
          *row_lse = m + std::log(l);
        }
      }
    }
  }
}

// Up to this many queries the forward reads K and V in place instead of packing them.
constexpr int64_t kFewQueries = 8;

}  // namespace

void attention_forward(const float* q, const float* k, const float* v, const AttentionShape& shape,
                       const AttentionMask& mask, float scale, float* out, float* lse) {
  const Geometry g(shape);
  if (g.Sq <= kFewQueries) return forward_few_queries(q, k, v, g, mask, scale, out, lse);
  const float* kp = pack_panels(k, g, kSlotK);
  const float* vn = pack_rows(v, g, kSlotV);
  const int threads = g.parallel() ? omp_get_max_threads() : 1;
  const int64_t per_thread = kBlockQ * (g.D + kBlockK + g.dp + 2);
  float* scratch = workspace(kSlotScratch, static_cast<size_t>(threads * per_thread));
  std::vector<KeyRange> ranges(static_cast<size_t>(threads * kBlockQ));
  const int64_t blocks = ceil_div(g.Sq, kBlockQ), tasks = g.B * g.Hq * blocks;
#pragma omp parallel num_threads(threads)
  {
    const int thread = omp_get_thread_num();
    float* base = scratch + thread * per_thread;
    ForwardScratch w;
    w.qs = base;
    w.s = w.qs + kBlockQ * g.D;
    w.o = w.s + kBlockQ * kBlockK;
    w.m = w.o + kBlockQ * g.dp;
    w.l = w.m + kBlockQ;
    w.ranges = ranges.data() + thread * kBlockQ;
#pragma omp for schedule(dynamic, 1)
    for (int64_t t = 0; t < tasks; ++t) {
      // Last query blocks first: under a causal mask they see the most keys, so the dynamic
      // schedule hands out the long tasks early and ends balanced.
      const int64_t qb = blocks - 1 - t % blocks, bh = t / blocks;
      const int64_t i0 = qb * kBlockQ;
      forward_block(q, kp, vn, g, mask, scale, bh / g.Hq, bh % g.Hq, i0, std::min(kBlockQ, g.Sq - i0),
                    w, out, lse);
    }
  }
}

void attention_backward(const float* q, const float* k, const float* v, const float* out, const float* lse,
                        const float* grad_out, const AttentionShape& shape, const AttentionMask& mask, float scale,
                        float* dq, float* dk, float* dv) {
  if (!dq && !dk && !dv) return;
  const Geometry g(shape);
  const float* kp = pack_panels(k, g, kSlotK);
  const float* vp = pack_panels(v, g, kSlotV);
  const float* kn = pack_rows(k, g, kSlotKRows);
  // dK and dV of every query head (summed over each GQA group at the end; zeroed by their task).
  const size_t head_kv = static_cast<size_t>(g.skp * g.dp);
  float* dk_heads = dk ? workspace(kSlotDk, g.B * g.Hq * head_kv) : nullptr;
  float* dv_heads = dv ? workspace(kSlotDv, g.B * g.Hq * head_kv) : nullptr;
  const int threads = g.parallel() ? omp_get_max_threads() : 1;
  // Per thread: Q (scaled), dO and dQ of one head [Sq][dp], rowsum(dO * O) [Sq], the P and dP / dS
  // tiles; and the key ranges of a query block.
  const int64_t per_thread = 3 * g.Sq * g.dp + g.Sq + 2 * kBlockQ * kBlockK;
  float* scratch = workspace(kSlotScratch, static_cast<size_t>(threads * per_thread));
  std::vector<KeyRange> all_ranges(static_cast<size_t>(threads * kBlockQ));
  const int64_t tasks = g.B * g.Hq;
#pragma omp parallel num_threads(threads)
  {
    const int thread = omp_get_thread_num();
    float* qs = scratch + thread * per_thread;
    float* dos = qs + g.Sq * g.dp;
    float* dqs = dos + g.Sq * g.dp;
    float* delta = dqs + g.Sq * g.dp;
    float* p = delta + g.Sq;
    float* ds = p + kBlockQ * kBlockK;
    KeyRange* ranges = all_ranges.data() + thread * kBlockQ;
#pragma omp for schedule(dynamic, 1)
    for (int64_t t = 0; t < tasks; ++t) {
      const int64_t b = t / g.Hq, h = t % g.Hq, hk = h / g.group;
      for (int64_t i = 0; i < g.Sq; ++i) {
        const int64_t at = Geometry::at(b, i, h, g.Sq, g.Hq, g.D);
        const float *qi = q + at, *gi = grad_out + at, *oi = out + at;
        float* qrow = qs + i * g.dp;
        float* grow = dos + i * g.dp;
#pragma omp simd
        for (int64_t d = 0; d < g.D; ++d) qrow[d] = qi[d] * scale;
        std::copy_n(gi, g.D, grow);
        std::fill(qrow + g.D, qrow + g.dp, 0.f);
        std::fill(grow + g.D, grow + g.dp, 0.f);
        double dot = 0.0;  // rowsum(dO * O): dS subtracts it from dP, so it is kept in double
#pragma omp simd reduction(+ : dot)
        for (int64_t d = 0; d < g.D; ++d) dot += static_cast<double>(gi[d]) * oi[d];
        delta[i] = static_cast<float>(dot);
      }
      std::fill(dqs, dqs + g.Sq * g.dp, 0.f);
      const float* kpb = kp + (b * g.Hkv + hk) * g.skp * g.D;
      const float* vpb = vp + (b * g.Hkv + hk) * g.skp * g.D;
      const float* knb = kn + (b * g.Hkv + hk) * g.skp * g.dp;
      float* dkh = dk ? dk_heads + t * head_kv : nullptr;
      float* dvh = dv ? dv_heads + t * head_kv : nullptr;
      if (dkh) std::fill(dkh, dkh + head_kv, 0.f);
      if (dvh) std::fill(dvh, dvh + head_kv, 0.f);
      const float* lse_h = lse + t * g.Sq;
      const int32_t* key_mask = mask.key_mask ? mask.key_mask + b * g.Sk : nullptr;
      for (int64_t i0 = 0; i0 < g.Sq; i0 += kBlockQ) {
        const int64_t nr = std::min(kBlockQ, g.Sq - i0);
        int64_t jmin, jmax;
        block_ranges(g, mask, i0, nr, ranges, &jmin, &jmax);
        const float* qb = qs + i0 * g.dp;
        const float* dob = dos + i0 * g.dp;
        for (int64_t j0 = jmin / kPanel * kPanel; j0 < jmax; j0 += kBlockK) {
          const int64_t kcols = std::min(kBlockK, g.skp - j0);
          matmul_tiles(nr, kcols, g.D, qb, g.dp, 1, kpb + j0 * g.D, kPanel, g.D * kPanel, p, kBlockK, false);
          mask_scores(p, nr, kcols, j0, ranges, key_mask);
          for (int64_t r = 0; r < nr; ++r) {
            float* pr = p + r * kBlockK;
            const float l = lse_h[i0 + r];
            if (l == kNegInf) {  // no visible key: no gradient
              std::fill(pr, pr + kcols, 0.f);
              continue;
            }
            const f32v vl = simd::splat(l);
            for (int64_t c = 0; c < kcols; c += kLanes) simd::store(pr + c, simd::exp(simd::load(pr + c) - vl));
          }
          if (dvh) matmul_tiles(kcols, g.dp, nr, p, 1, kBlockK, dob, g.dp, kPanel, dvh + j0 * g.dp, g.dp, true);
          if (!dq && !dk) continue;
          matmul_tiles(nr, kcols, g.D, dob, g.dp, 1, vpb + j0 * g.D, kPanel, g.D * kPanel, ds, kBlockK, false);
          for (int64_t r = 0; r < nr; ++r) {
            const f32v vd = simd::splat(delta[i0 + r]);
            float* dsr = ds + r * kBlockK;
            const float* pr = p + r * kBlockK;
            for (int64_t c = 0; c < kcols; c += kLanes)
              simd::store(dsr + c, simd::load(pr + c) * (simd::load(dsr + c) - vd));
          }
          if (dq) matmul_tiles(nr, g.dp, kcols, ds, kBlockK, 1, knb + j0 * g.dp, g.dp, kPanel, dqs + i0 * g.dp, g.dp, true);
          if (dkh) matmul_tiles(kcols, g.dp, nr, ds, 1, kBlockK, qb, g.dp, kPanel, dkh + j0 * g.dp, g.dp, true);
        }
      }
      if (dq) {
        for (int64_t i = 0; i < g.Sq; ++i) {
          float* dst = dq + Geometry::at(b, i, h, g.Sq, g.Hq, g.D);
          for (int64_t d = 0; d < g.D; ++d) dst[d] = dqs[i * g.dp + d] * scale;
        }
      }
    }
  }
  // dK, dV: the sum over the query heads of each kv head (Q was pre-scaled, so dK = dS^T (scale Q)).
#pragma omp parallel for collapse(2) if (g.parallel()) schedule(static)
  for (int64_t b = 0; b < g.B; ++b) {
    for (int64_t j = 0; j < g.Sk; ++j) {
      for (int64_t hk = 0; hk < g.Hkv; ++hk) {
        for (int pass = 0; pass < 2; ++pass) {
          float* dst = pass == 0 ? dk : dv;
          if (!dst) continue;
          const float* heads = (pass == 0 ? dk_heads : dv_heads) + (b * g.Hq + hk * g.group) * head_kv + j * g.dp;
          float* row = dst + Geometry::at(b, j, hk, g.Sk, g.Hkv, g.D);
          std::copy_n(heads, g.D, row);
          for (int64_t gi = 1; gi < g.group; ++gi) {
            const float* src = heads + gi * head_kv;
#pragma omp simd
            for (int64_t d = 0; d < g.D; ++d) row[d] += src[d];
          }
        }
      }
    }
  }
}

}  // namespace othink::cpu
