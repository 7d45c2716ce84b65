// Token choice on the GPU (twin of cpu/sampling.cc, the rule in cpu/sampling.h): one block of 512
// threads per row. The warped row goes to a scratch row once; then, reading it from L2:
//   max / first argmax and the log-partition           2 passes
//   top-k: a radix selection of the k-th largest key   4 passes (8-bit digits, counts)
//   top-p: the kept weight, then a radix selection     5 passes (weights)
//   the draw: tie ranks, chunk weights, the walk       3 passes (the last over one chunk)
// so at most 15 reads of the row and no sort: for Qwen2-VL's 151936 ids, ~0.6 MB per pass. Every
// decision is an exact integer sum (any order gives the CPU's result); the float sums (the
// log-partition) use the fixed-order block reductions of device_utils.cuh, so results are
// deterministic. Costs to know: the weight passes evaluate a double exp per element (full rate on
// A100 / H100 / H200, slow on consumer GPUs), and histograms are shared-memory atomics (counts
// aggregated per warp; weights only for tokens of non-zero weight, usually a few thousand).
#include <cuda_runtime.h>
#include <math_constants.h>

#include <algorithm>
#include <climits>
#include <cstdint>

#include "cuda/allocator.cuh"
#include "cuda/check.cuh"
#include "cuda/device_utils.cuh"
#include "cuda/sampling.cuh"

namespace othink::cuda {
namespace {

using sampling::Args;
using u64 = unsigned long long;

constexpr int kThreads = 512;
constexpr int kWarps = kThreads / 32;
// Blocks loop over rows; each has a scratch row, so this caps the scratch (256 * vocab floats).
constexpr int64_t kMaxBlocks = 256;
constexpr u64 kAllTies = ~u64{0};

struct Best {
  float v;
  long long i;
};

// The larger value, the lower index on ties: the first index of the maximum.
__device__ __forceinline__ Best better(Best a, Best b) { return (b.v > a.v || (b.v == a.v && b.i < a.i)) ? b : a; }

__device__ __forceinline__ Best warp_best(Best x) {
#pragma unroll
  for (int o = 16; o > 0; o >>= 1)
    x = better(x, Best{__shfl_xor_sync(dev::kFullMask, x.v, o), __shfl_xor_sync(dev::kFullMask, x.i, o)});
  return x;
}

// The block's maximum and its first index, to every thread (ends with a barrier).
__device__ Best block_best(Best x) {
  __shared__ float values[kWarps];
  __shared__ long long indices[kWarps];
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
  x = warp_best(x);
  if (lane == 0) values[warp] = x.v, indices[warp] = x.i;
  __syncthreads();
  x = warp_best(lane < kWarps ? Best{values[lane], indices[lane]} : Best{-CUDART_INF_F, LLONG_MAX});
  __syncthreads();
  return x;
}

// Exclusive prefix sum over the threads in index order, and the total (ends with a barrier).
__device__ u64 block_exclusive_scan(u64 x, u64& total) {
  __shared__ u64 warp_totals[kWarps];
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
  u64 inclusive = x;
#pragma unroll
  for (int o = 1; o < 32; o <<= 1) {
    const u64 y = __shfl_up_sync(dev::kFullMask, inclusive, o);
    if (lane >= o) inclusive += y;
  }
  if (lane == 31) warp_totals[warp] = inclusive;
  __syncthreads();
  if (warp == 0) {
    u64 t = lane < kWarps ? warp_totals[lane] : 0;
#pragma unroll
    for (int o = 1; o < 32; o <<= 1) {
      const u64 y = __shfl_up_sync(dev::kFullMask, t, o);
      if (lane >= o) t += y;
    }
    if (lane < kWarps) warp_totals[lane] = t;  // inclusive over warps
  }
  __syncthreads();
  const u64 warp_base = warp > 0 ? warp_totals[warp - 1] : 0;
  total = warp_totals[kWarps - 1];
  __syncthreads();
  return warp_base + inclusive - x;
}

struct Selected {
  uint32_t key;
  u64 above;
};

// The radix selection of cpu/sampling.cc by the whole block: the largest key v with
// sum over { key_i >= v, key_i >= floor } of (1, or w_i when kByWeight) >= target.
template <bool kByWeight>
__device__ Selected block_radix_select(const float* s, int64_t v, uint32_t floor, u64 target, float m, int bits,
                                       uint64_t* hist) {
  const int lane = threadIdx.x & 31;
  uint32_t prefix = 0;
  uint64_t above = 0;
  for (int shift = 24; shift >= 0; shift -= 8) {
    for (int d = threadIdx.x; d < 256; d += blockDim.x) hist[d] = 0;
    __syncthreads();
    const uint32_t high = shift == 24 ? 0u : ~0u << (shift + 8);  // the digits chosen so far
    // Whole warps step together (the loop start is the warp's first thread), so a warp can merge
    // its counts: one shared atomic per distinct digit instead of one per element.
    for (int64_t base = threadIdx.x - lane; base < v; base += blockDim.x) {
      const int64_t i = base + lane;
      uint32_t digit = 256;  // no element
      u64 w = 0;
      if (i < v) {
        const float x = s[i];
        const uint32_t k = sampling::order_key(x);
        if (k >= floor && (k & high) == prefix) {
          w = kByWeight ? sampling::weight(x, m, bits) : 1;
          if (w > 0) digit = (k >> shift) & 255u;
        }
      }
      if (kByWeight) {
        if (digit < 256) atomicAdd(reinterpret_cast<u64*>(hist + digit), w);
      } else {
        const unsigned same = __match_any_sync(dev::kFullMask, digit);
        if (digit < 256 && lane == __ffs(same) - 1)
          atomicAdd(reinterpret_cast<u64*>(hist + digit), static_cast<u64>(__popc(same)));
      }
    }
    __syncthreads();
    prefix |= sampling::pick_digit(hist, target, above) << shift;
    __syncthreads();  // every thread has read hist before the next level clears it
  }
  return {prefix, above};
}

__device__ __forceinline__ bool in_range(float t, int32_t k, float p) {
  return t > 0.f && isfinite(t) && k >= 0 && p > 0.f && p <= 1.f;
}

__global__ void __launch_bounds__(kThreads) sample_kernel(Args a, float* __restrict__ scratch) {
  __shared__ uint64_t hist[256];
  __shared__ long long chosen;
  const int64_t v = a.vocab;
  float* s = scratch + static_cast<int64_t>(blockIdx.x) * v;
  for (int64_t r = blockIdx.x; r < a.rows; r += gridDim.x) {
    __syncthreads();  // the previous row is done with s and the shared state
    // Every branch below depends only on values the whole block shares: the returns are uniform.
    if (a.done && a.done[r]) {
      if (threadIdx.x == 0) a.out_ids[r] = a.pad, a.out_logprobs[r] = 0.f;
      continue;
    }
    const float t = a.do_sample ? (a.temperatures ? a.temperatures[r] : a.temperature) : 1.f;
    const int32_t top_k = a.top_ks ? a.top_ks[r] : a.top_k;
    const float top_p = a.top_ps ? a.top_ps[r] : a.top_p;
    if (a.do_sample && !in_range(t, top_k, top_p)) {
      if (threadIdx.x == 0) a.out_ids[r] = -1, a.out_logprobs[r] = CUDART_NAN_F;
      continue;
    }

    // 1. Temperature (IEEE division, as the CPU's), then the suppressed ids.
    const float* x = a.logits + r * v;
    int bad = 0;
    for (int64_t i = threadIdx.x; i < v; i += blockDim.x) {
      const float xi = x[i];
      bad |= isnan(xi) || xi == CUDART_INF_F;
      s[i] = a.do_sample ? __fdiv_rn(xi, t) : xi;
    }
    __syncthreads();
    for (int64_t j = threadIdx.x; j < a.suppress_count; j += blockDim.x) {
      const int32_t id = a.suppress[j];
      if (id >= 0 && id < v) s[id] = -CUDART_INF_F;
    }
    __syncthreads();

    // 2. The maximum and its first index (the greedy choice), the log-partition.
    Best best{-CUDART_INF_F, LLONG_MAX};
    for (int64_t i = threadIdx.x; i < v; i += blockDim.x) best = better(best, Best{s[i], i});
    best = block_best(best);
    bad = dev::block_sum(bad);
    if (bad != 0 || best.v == -CUDART_INF_F) {
      if (threadIdx.x == 0) a.out_ids[r] = -1, a.out_logprobs[r] = CUDART_NAN_F;
      continue;
    }
    const float m = best.v;
    double z = 0.0;
    for (int64_t i = threadIdx.x; i < v; i += blockDim.x) z += exp(static_cast<double>(s[i]) - static_cast<double>(m));
    z = dev::block_sum(z);

    long long token = best.i;
    if (a.do_sample) {
      // 3. Top-k by count, then top-p by weight.
      const int bits = sampling::weight_bits(v);
      uint32_t kept_key = 0;
      if (top_k > 0 && top_k < v)
        kept_key = block_radix_select<false>(s, v, 0, static_cast<u64>(top_k), m, bits, hist).key;
      u64 ties = kAllTies;
      if (top_p < 1.f) {
        u64 kept = 0;
        for (int64_t i = threadIdx.x; i < v; i += blockDim.x)
          if (sampling::order_key(s[i]) >= kept_key) kept += sampling::weight(s[i], m, bits);
        kept = dev::block_sum(kept);
        const u64 target = sampling::top_p_target(top_p, kept);
        const Selected sel = block_radix_select<true>(s, v, kept_key, target, m, bits, hist);
        kept_key = sel.key;
        ties = sampling::ties_kept(target, sel.above, sampling::weight(sampling::key_value(sel.key), m, bits));
      }
      // 4. The draw, in index order: thread t owns the chunk [lo, hi), the chunks in thread order.
      const int64_t chunk = (v + blockDim.x - 1) / blockDim.x;
      const int64_t start = static_cast<int64_t>(threadIdx.x) * chunk;
      const int64_t lo = start < v ? start : v, hi = lo + chunk < v ? lo + chunk : v;
      if (threadIdx.x == 0) chosen = best.i;  // never kept: the draw below always finds its token
      u64 total = 0, tie_base = 0;
      if (ties != kAllTies) {
        u64 own = 0;
        for (int64_t i = lo; i < hi; ++i) own += sampling::order_key(s[i]) == kept_key;
        tie_base = block_exclusive_scan(own, total);
      }
      u64 mass = 0, rank = tie_base;
      for (int64_t i = lo; i < hi; ++i) {
        const uint32_t k = sampling::order_key(s[i]);
        if (k > kept_key || (k == kept_key && rank++ < ties)) mass += sampling::weight(s[i], m, bits);
      }
      const u64 base = block_exclusive_scan(mass, total);
      const u64 draw = sampling::scale_draw(
          sampling::draw_bits(static_cast<uint32_t>(a.seeds[2 * r]), static_cast<uint32_t>(a.seeds[2 * r + 1]), a.step),
          total);
      // The chunks partition [0, total): exactly one thread holds the draw.
      if (draw >= base && draw - base < mass) {
        u64 cum = base;
        rank = tie_base;
        for (int64_t i = lo; i < hi; ++i) {
          const uint32_t k = sampling::order_key(s[i]);
          if (!(k > kept_key || (k == kept_key && rank++ < ties))) continue;
          cum += sampling::weight(s[i], m, bits);
          if (cum > draw) {
            chosen = i;
            break;
          }
        }
      }
      __syncthreads();
      token = chosen;
    }
    if (threadIdx.x == 0) {
      a.out_ids[r] = static_cast<int32_t>(token);
      a.out_logprobs[r] = static_cast<float>(static_cast<double>(s[token]) - static_cast<double>(m) - log(z));
      if (a.done)
        for (int64_t j = 0; j < a.stop_count; ++j)
          if (a.stop[j] == token) a.done[r] = 1;
    }
  }
}

}  // namespace

void sample_tokens(const Args& args, cudaStream_t stream) {
  if (args.rows < 0 || args.vocab < 1) throw_bad_argument("sample_tokens", "rows must be >= 0 and vocab >= 1");
  if (args.rows == 0) return;
  const int64_t blocks = std::min(args.rows, kMaxBlocks);
  DeviceScratch scratch(static_cast<size_t>(blocks * args.vocab) * sizeof(float));
  sample_kernel<<<static_cast<unsigned>(blocks), kThreads, 0, stream>>>(args, scratch.as<float>());
  OTHINK_CUDA_CHECK_LAUNCH();
}

}  // namespace othink::cuda
