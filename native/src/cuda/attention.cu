// Attention on the GPU (twin of cpu/attention.cc), written for correctness first: one warp per
// query row (forward, dQ) or per key row (dK / dV), no [S, S] matrix anywhere.
//
// Forward: the warp walks the row's visible keys 32 at a time, lane j scoring key j0 + j against
// the (scaled) query held in shared memory; an online softmax (running max m, sum l) rescales the
// output accumulator, whose dims are spread over the lanes (D <= kAttentionMaxDim, so at most
// kPerLane registers each); p_j is broadcast by shuffles to accumulate p_j v_j.
// Backward, without atomics and deterministic, like the CPU's:
//   1. per query row: delta = rowsum(dO * O), then dQ = scale sum_j dS_j k_j with
//      P = exp(S - lse), dS = P (dO . v - delta), the keys again 32 at a time;
//   2. per key row: dV = sum_i P_ij dO_i and dK = scale sum_i dS_ij q_i over the query rows (of every
//      query head of the GQA group) that see the key, from the same lse and delta.
#include <cuda_bf16.h>
#include <math_constants.h>

#include <algorithm>
#include <string>

#include "cuda/attention.cuh"
#include "cuda/check.cuh"
#include "cuda/device_utils.cuh"

namespace othink::cuda {
namespace {

constexpr int kWarps = 4;  // rows per block
constexpr int kThreads = kWarps * 32;
constexpr int kPerLane = static_cast<int>(kAttentionMaxDim / 32);
using dev::kFullMask;

struct Params {
  int64_t B, Sq, Sk, Hq, Hkv, D, group;
  bool causal;
  const int32_t* key_mask;
  const int32_t* cu;
  int64_t segments;
  float scale;
};

__device__ __forceinline__ int64_t min64(int64_t a, int64_t b) { return a < b ? a : b; }
__device__ __forceinline__ int64_t max64(int64_t a, int64_t b) { return a > b ? a : b; }

__device__ __forceinline__ float warp_max(float x) {
#pragma unroll
  for (int offset = 16; offset > 0; offset >>= 1) x = fmaxf(x, __shfl_xor_sync(kFullMask, x, offset));
  return x;
}

// The segment [lo, hi) holding position i (cu_seqlens checked by the caller: 0 = c0 < ... = S).
__device__ __forceinline__ void segment_of(const Params& p, int64_t i, int64_t& lo, int64_t& hi) {
  int64_t a = 0, b = p.segments;  // find the last s with cu[s] <= i
  while (b - a > 1) {
    const int64_t mid = (a + b) / 2;
    if (p.cu[mid] <= i) a = mid;
    else b = mid;
  }
  lo = p.cu[a];
  hi = p.cu[a + 1];
}

// Keys [lo, hi) that query i may see by segment and causality (the key mask comes on top).
__device__ __forceinline__ void key_range(const Params& p, int64_t i, int64_t& lo, int64_t& hi) {
  lo = 0;
  hi = p.Sk;
  if (p.cu) segment_of(p, i, lo, hi);
  if (p.causal) hi = min64(hi, i + p.Sk - p.Sq + 1);
  if (hi < lo) hi = lo;
}

// Queries [lo, hi) that may see key j (the same relation, read the other way).
__device__ __forceinline__ void query_range(const Params& p, int64_t j, int64_t& lo, int64_t& hi) {
  lo = 0;
  hi = p.Sq;
  if (p.cu) segment_of(p, j, lo, hi);
  if (p.causal) lo = max64(lo, j - (p.Sk - p.Sq));
  if (hi < lo) hi = lo;
}

__device__ __forceinline__ bool key_allowed(const Params& p, int64_t b, int64_t j) {
  return !p.key_mask || p.key_mask[b * p.Sk + j] != 0;
}

// dot(x (shared, float), row (global, T)) over D, serial in one lane.
template <typename T>
__device__ __forceinline__ float dot_row(const float* x, const T* row, int64_t D) {
  float acc = 0.f;
  for (int64_t d = 0; d < D; ++d) acc = fmaf(x[d], dev::to_float(row[d]), acc);
  return acc;
}

template <typename T>
__device__ __forceinline__ const T* row_of(const T* base, int64_t b, int64_t pos, int64_t head, int64_t seq,
                                           int64_t heads, int64_t D) {
  return base + ((b * seq + pos) * heads + head) * D;
}

// acc[t] (dim lane + 32 t) += w * row[dim] for the lane's dims.
template <typename T>
__device__ __forceinline__ void axpy_lanes(float (&acc)[kPerLane], float w, const T* row, int64_t D, int lane) {
#pragma unroll
  for (int t = 0; t < kPerLane; ++t) {
    const int64_t d = lane + 32 * t;
    if (d < D) acc[t] = fmaf(w, dev::to_float(row[d]), acc[t]);
  }
}

template <typename T>
__global__ void __launch_bounds__(kThreads)
    forward_kernel(const T* __restrict__ q, const T* __restrict__ k, const T* __restrict__ v, Params p,
                   T* __restrict__ out, float* __restrict__ lse) {
  extern __shared__ float smem[];
  const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31;
  float* qs = smem + warp * p.D;
  const int64_t rows = p.B * p.Hq * p.Sq;
  for (int64_t row = static_cast<int64_t>(blockIdx.x) * kWarps + warp; row < rows;
       row += static_cast<int64_t>(gridDim.x) * kWarps) {
    const int64_t i = row % p.Sq, bh = row / p.Sq, h = bh % p.Hq, b = bh / p.Hq, hk = h / p.group;
    const T* qrow = row_of(q, b, i, h, p.Sq, p.Hq, p.D);
    __syncwarp();  // the previous row's reads of qs are done
    for (int64_t d = lane; d < p.D; d += 32) qs[d] = dev::to_float(qrow[d]) * p.scale;
    __syncwarp();
    int64_t lo, hi;
    key_range(p, i, lo, hi);
    float m = -CUDART_INF_F, l = 0.f, o[kPerLane];
#pragma unroll
    for (int t = 0; t < kPerLane; ++t) o[t] = 0.f;
    for (int64_t j0 = lo; j0 < hi; j0 += 32) {
      const int64_t j = j0 + lane;
      float s = -CUDART_INF_F;
      if (j < hi && key_allowed(p, b, j)) s = dot_row(qs, row_of(k, b, j, hk, p.Sk, p.Hkv, p.D), p.D);
      const float m_new = fmaxf(m, warp_max(s));
      if (m_new == -CUDART_INF_F) continue;  // nothing visible yet (warp-uniform)
      const float alpha = m == -CUDART_INF_F ? 0.f : expf(m - m_new);
      const float pj = s == -CUDART_INF_F ? 0.f : expf(s - m_new);
      l = l * alpha + dev::warp_sum(pj);
      m = m_new;
#pragma unroll
      for (int t = 0; t < kPerLane; ++t) o[t] *= alpha;
      const int count = static_cast<int>(min64(32, hi - j0));
      for (int jj = 0; jj < count; ++jj) {
        const float w = __shfl_sync(kFullMask, pj, jj);
        if (w != 0.f) axpy_lanes(o, w, row_of(v, b, j0 + jj, hk, p.Sk, p.Hkv, p.D), p.D, lane);
      }
    }
    // No visible key: output 0, lse -inf (cpu/attention.h).
    const float inv = l > 0.f ? 1.f / l : 0.f;
    T* orow = out + ((b * p.Sq + i) * p.Hq + h) * p.D;
#pragma unroll
    for (int t = 0; t < kPerLane; ++t) {
      const int64_t d = lane + 32 * t;
      if (d < p.D) orow[d] = dev::from_float<T>(o[t] * inv);
    }
    if (lane == 0) lse[row] = l > 0.f ? m + logf(l) : -CUDART_INF_F;
  }
}

// Pass 1 of the backward: delta = rowsum(dO * O) for every query row, and dQ (when dq is given).
template <typename T>
__global__ void __launch_bounds__(kThreads)
    backward_dq_kernel(const T* __restrict__ q, const T* __restrict__ k, const T* __restrict__ v,
                       const T* __restrict__ out, const float* __restrict__ lse, const T* __restrict__ grad_out,
                       Params p, float* __restrict__ delta, T* __restrict__ dq) {
  extern __shared__ float smem[];
  const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31;
  float* qs = smem + warp * 2 * p.D;
  float* dos = qs + p.D;
  const int64_t rows = p.B * p.Hq * p.Sq;
  for (int64_t row = static_cast<int64_t>(blockIdx.x) * kWarps + warp; row < rows;
       row += static_cast<int64_t>(gridDim.x) * kWarps) {
    const int64_t i = row % p.Sq, bh = row / p.Sq, h = bh % p.Hq, b = bh / p.Hq, hk = h / p.group;
    const int64_t at = ((b * p.Sq + i) * p.Hq + h) * p.D;
    __syncwarp();
    float part = 0.f;
    for (int64_t d = lane; d < p.D; d += 32) {
      const float g = dev::to_float(grad_out[at + d]);
      qs[d] = dev::to_float(q[at + d]) * p.scale;
      dos[d] = g;
      part = fmaf(g, dev::to_float(out[at + d]), part);
    }
    const float dl = dev::warp_sum(part);
    __syncwarp();
    if (lane == 0) delta[row] = dl;
    if (!dq) continue;
    const float row_lse = lse[row];
    float acc[kPerLane];
#pragma unroll
    for (int t = 0; t < kPerLane; ++t) acc[t] = 0.f;
    int64_t lo, hi;
    key_range(p, i, lo, hi);
    if (row_lse == -CUDART_INF_F) hi = lo;  // no visible key: no gradient
    for (int64_t j0 = lo; j0 < hi; j0 += 32) {
      const int64_t j = j0 + lane;
      float ds = 0.f;
      if (j < hi && key_allowed(p, b, j)) {
        const float pj = expf(dot_row(qs, row_of(k, b, j, hk, p.Sk, p.Hkv, p.D), p.D) - row_lse);
        ds = pj * (dot_row(dos, row_of(v, b, j, hk, p.Sk, p.Hkv, p.D), p.D) - dl);
      }
      const int count = static_cast<int>(min64(32, hi - j0));
      for (int jj = 0; jj < count; ++jj) {
        const float w = __shfl_sync(kFullMask, ds, jj);
        if (w != 0.f) axpy_lanes(acc, w, row_of(k, b, j0 + jj, hk, p.Sk, p.Hkv, p.D), p.D, lane);
      }
    }
    T* dst = dq + at;
#pragma unroll
    for (int t = 0; t < kPerLane; ++t) {
      const int64_t d = lane + 32 * t;
      if (d < p.D) dst[d] = dev::from_float<T>(acc[t] * p.scale);
    }
  }
}

// Pass 2: dK and dV of one key row (b, j, kv head) from every query row of its group that sees it.
template <typename T>
__global__ void __launch_bounds__(kThreads)
    backward_dkv_kernel(const T* __restrict__ q, const T* __restrict__ k, const T* __restrict__ v,
                        const float* __restrict__ lse, const T* __restrict__ grad_out,
                        const float* __restrict__ delta, Params p, T* __restrict__ dk, T* __restrict__ dv) {
  extern __shared__ float smem[];
  const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31;
  float* ks = smem + warp * 2 * p.D;
  float* vs = ks + p.D;
  const int64_t rows = p.B * p.Hkv * p.Sk;
  for (int64_t row = static_cast<int64_t>(blockIdx.x) * kWarps + warp; row < rows;
       row += static_cast<int64_t>(gridDim.x) * kWarps) {
    // row = (b, j, hk) in k's own order, so that the writes below are contiguous.
    const int64_t hk = row % p.Hkv, bj = row / p.Hkv, j = bj % p.Sk, b = bj / p.Sk;
    const int64_t at = row * p.D;
    __syncwarp();
    for (int64_t d = lane; d < p.D; d += 32) {
      ks[d] = dev::to_float(k[at + d]) * p.scale;  // scaled: s = q . (scale k), dK gets scale below
      vs[d] = dev::to_float(v[at + d]);
    }
    __syncwarp();
    float ak[kPerLane], av[kPerLane];
#pragma unroll
    for (int t = 0; t < kPerLane; ++t) ak[t] = av[t] = 0.f;
    int64_t lo, hi;
    query_range(p, j, lo, hi);
    if (!key_allowed(p, b, j)) hi = lo;  // a padding key: no gradient
    for (int64_t h = hk * p.group; h < (hk + 1) * p.group; ++h) {
      const int64_t bh = b * p.Hq + h;
      for (int64_t i0 = lo; i0 < hi; i0 += 32) {
        const int64_t i = i0 + lane;
        float pi = 0.f, ds = 0.f;
        if (i < hi) {
          const float row_lse = lse[bh * p.Sq + i];
          if (row_lse != -CUDART_INF_F) {
            pi = expf(dot_row(ks, row_of(q, b, i, h, p.Sq, p.Hq, p.D), p.D) - row_lse);
            ds = pi * (dot_row(vs, row_of(grad_out, b, i, h, p.Sq, p.Hq, p.D), p.D) - delta[bh * p.Sq + i]);
          }
        }
        const int count = static_cast<int>(min64(32, hi - i0));
        for (int ii = 0; ii < count; ++ii) {
          const float wp = __shfl_sync(kFullMask, pi, ii), wd = __shfl_sync(kFullMask, ds, ii);
          if (wp != 0.f) axpy_lanes(av, wp, row_of(grad_out, b, i0 + ii, h, p.Sq, p.Hq, p.D), p.D, lane);
          if (wd != 0.f) axpy_lanes(ak, wd, row_of(q, b, i0 + ii, h, p.Sq, p.Hq, p.D), p.D, lane);
        }
      }
    }
#pragma unroll
    for (int t = 0; t < kPerLane; ++t) {
      const int64_t d = lane + 32 * t;
      if (d >= p.D) continue;
      if (dk) dk[at + d] = dev::from_float<T>(ak[t] * p.scale);
      if (dv) dv[at + d] = dev::from_float<T>(av[t]);
    }
  }
}

Params make_params(const char* fn, const AttentionShape& s, const AttentionMask& m, float scale) {
  if (s.batch < 0 || s.seq_q < 0 || s.seq_k < 0 || s.heads_q < 0 || s.heads_kv < 1 || s.dim < 1)
    throw_bad_argument(fn, "sizes must be >= 0, with heads_kv and dim >= 1");
  if (s.dim > kAttentionMaxDim)
    throw_bad_argument(fn, "dim " + std::to_string(s.dim) + " exceeds " + std::to_string(kAttentionMaxDim));
  if (s.heads_q % s.heads_kv != 0) throw_bad_argument(fn, "heads_q must be a multiple of heads_kv");
  if (m.causal && s.seq_q > s.seq_k) throw_bad_argument(fn, "causal attention needs seq_q <= seq_k");
  if (m.cu_seqlens && (s.batch != 1 || s.seq_q != s.seq_k || m.segments < 1))
    throw_bad_argument(fn, "cu_seqlens needs batch 1, seq_q == seq_k and at least one segment");
  return {s.batch, s.seq_q, s.seq_k, s.heads_q, s.heads_kv, s.dim, s.heads_q / s.heads_kv,
          m.causal, m.key_mask, m.cu_seqlens, m.segments, scale};
}

unsigned blocks_for(int64_t rows) { return dev::grid_for((rows + kWarps - 1) / kWarps, 1 << 20); }

}  // namespace

template <typename T>
void attention_forward(const T* q, const T* k, const T* v, const AttentionShape& shape, const AttentionMask& mask,
                       float scale, T* out, float* lse, cudaStream_t stream) {
  const Params p = make_params("attention_forward", shape, mask, scale);
  const int64_t rows = p.B * p.Hq * p.Sq;
  if (rows == 0) return;
  if (!q || !out || !lse || (p.Sk > 0 && (!k || !v)))
    throw_bad_argument("attention_forward", "q, k, v, out and lse must be device pointers");
  const size_t smem = static_cast<size_t>(kWarps * p.D) * sizeof(float);
  forward_kernel<T><<<blocks_for(rows), kThreads, smem, stream>>>(q, k, v, p, out, lse);
  OTHINK_CUDA_CHECK_LAUNCH();
}

template <typename T>
void attention_backward(const T* q, const T* k, const T* v, const T* out, const float* lse, const T* grad_out,
                        const AttentionShape& shape, const AttentionMask& mask, float scale, T* dq, T* dk, T* dv,
                        cudaStream_t stream) {
  const Params p = make_params("attention_backward", shape, mask, scale);
  if (!dq && !dk && !dv) return;
  const int64_t q_rows = p.B * p.Hq * p.Sq, kv_rows = p.B * p.Hkv * p.Sk;
  if (q_rows == 0 && kv_rows == 0) return;
  if (!q || !k || !v || !out || !lse || !grad_out)
    throw_bad_argument("attention_backward", "q, k, v, out, lse and grad_out must be device pointers");
  const size_t smem = static_cast<size_t>(kWarps * 2 * p.D) * sizeof(float);
  float* delta = nullptr;
  if (q_rows > 0) {
    OTHINK_CUDA_CHECK(cudaMallocAsync(reinterpret_cast<void**>(&delta), static_cast<size_t>(q_rows) * sizeof(float),
                                      stream));
    backward_dq_kernel<T><<<blocks_for(q_rows), kThreads, smem, stream>>>(q, k, v, out, lse, grad_out, p, delta, dq);
    OTHINK_CUDA_CHECK_LAUNCH();
  }
  if (kv_rows > 0 && (dk || dv)) {
    // With no queries at all every key gets a zero gradient; the kernel writes those zeros.
    backward_dkv_kernel<T><<<blocks_for(kv_rows), kThreads, smem, stream>>>(q, k, v, lse, grad_out, delta, p, dk, dv);
    OTHINK_CUDA_CHECK_LAUNCH();
  }
  if (delta) OTHINK_CUDA_CHECK(cudaFreeAsync(delta, stream));
}

using bf16 = __nv_bfloat16;
template void attention_forward<float>(const float*, const float*, const float*, const AttentionShape&,
                                       const AttentionMask&, float, float*, float*, cudaStream_t);
template void attention_forward<bf16>(const bf16*, const bf16*, const bf16*, const AttentionShape&,
                                      const AttentionMask&, float, bf16*, float*, cudaStream_t);
template void attention_backward<float>(const float*, const float*, const float*, const float*, const float*,
                                        const float*, const AttentionShape&, const AttentionMask&, float, float*,
                                        float*, float*, cudaStream_t);
template void attention_backward<bf16>(const bf16*, const bf16*, const bf16*, const bf16*, const float*,
                                       const bf16*, const AttentionShape&, const AttentionMask&, float, bf16*,
                                       bf16*, bf16*, cudaStream_t);

}  // namespace othink::cuda
