// Online softmax statistics (Milakov & Gimelshein 2018) for the log-prob kernels: a running max
// with the sum of exponentials and, for the entropy, the exp-weighted sum of (z - max), merged
// across threads with warp shuffles and shared memory. Device-only.
#pragma once
#ifndef __CUDACC__
#error "cuda/online_softmax.cuh holds device code: include it from .cu files only"
#endif
#include <math_constants.h>

#include "cuda/device_utils.cuh"

namespace othink::cuda::dev {

// Softmax statistics of a set of scaled logits z relative to their max m:
// s = sum exp(z - m), t = sum exp(z - m) * (z - m). Empty: m = -inf, s = t = 0.
// Then lse = m + log s and the entropy is H = lse - E_p[z] = log s - t / s.
struct SoftmaxState {
  float m, s, t;
};

__device__ __forceinline__ SoftmaxState empty_state() { return {-CUDART_INF_F, 0.f, 0.f}; }

// The state of the union of two sets. Moving b's sums to the larger max a.m (d = b.m - a.m <= 0):
// exp(z - a.m) = exp(z - b.m) * e^d and (z - a.m) = (z - b.m) + d.
__device__ __forceinline__ SoftmaxState merge(SoftmaxState a, SoftmaxState b) {
  if (a.m < b.m) {
    const SoftmaxState c = a;
    a = b;
    b = c;
  }
  if (b.s == 0.f) return a;  // b empty (a NaN in b.s still propagates)
  const float d = b.m - a.m;
  const float scale = __expf(d);
  a.s += scale * b.s;
  a.t += scale * (b.t + d * b.s);
  return a;
}

// Adds kCount scaled logits z[0..kCount) to a thread's state: at most one rescale per vector.
template <bool kEntropy, int kCount>
__device__ __forceinline__ void softmax_add(SoftmaxState& st, const float (&z)[kVec]) {
  float bm = z[0];
#pragma unroll
  for (int k = 1; k < kCount; ++k) bm = fmaxf(bm, z[k]);
  if (bm == -CUDART_INF_F) return;  // only -inf (masked) logits: they add nothing
  if (bm > st.m) {
    if (st.s != 0.f) {
      const float d = st.m - bm;
      const float scale = __expf(d);
      if (kEntropy) st.t = scale * (st.t + d * st.s);
      st.s *= scale;
    }
    st.m = bm;
  }
#pragma unroll
  for (int k = 0; k < kCount; ++k) {
    const float x = z[k] - st.m;
    const float e = __expf(x);  // x <= 0: ex2.approx, a few ulp, like the CPU twin's polynomial exp
    st.s += e;
    if (kEntropy) st.t += e > 0.f ? e * x : 0.f;  // e == 0: x may be -inf, and 0 * -inf is NaN
  }
}

__device__ __forceinline__ SoftmaxState warp_merge(SoftmaxState st) {
#pragma unroll
  for (int offset = 16; offset > 0; offset >>= 1) {
    const SoftmaxState other{__shfl_xor_sync(kFullMask, st.m, offset),
                             __shfl_xor_sync(kFullMask, st.s, offset),
                             __shfl_xor_sync(kFullMask, st.t, offset)};
    st = merge(st, other);
  }
  return st;
}

// The block's merged state, valid in thread 0. Ends with a barrier: the next row may reuse the
// shared slots at once.
__device__ inline SoftmaxState block_merge(SoftmaxState st) {
  __shared__ SoftmaxState warp_states[32];
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
  st = warp_merge(st);
  if (lane == 0) warp_states[warp] = st;
  __syncthreads();
  if (warp == 0) {
    st = lane < static_cast<int>(blockDim.x >> 5) ? warp_states[lane] : empty_state();
    st = warp_merge(st);
  }
  __syncthreads();
  return st;
}

}  // namespace othink::cuda::dev
