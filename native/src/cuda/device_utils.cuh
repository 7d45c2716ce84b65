// Device-side building blocks of the RL kernels: float / bfloat16 conversion, 128-bit vector
// loads and stores of eight elements, warp and block sums. Only .cu files include this.
#pragma once
#ifndef __CUDACC__
#error "cuda/device_utils.cuh holds device code: include it from .cu files only"
#endif
#include <cuda_bf16.h>
#include <cuda_runtime.h>

#include <cstdint>

namespace othink::cuda::dev {

constexpr unsigned kFullMask = 0xffffffffu;

// ---- element conversion: bf16 -> f32 is exact; f32 -> bf16 rounds to nearest even, NaN stays NaN.
__device__ __forceinline__ float to_float(float x) { return x; }
__device__ __forceinline__ float to_float(__nv_bfloat16 x) { return __bfloat162float(x); }

template <typename T>
__device__ __forceinline__ T from_float(float x);
template <>
__device__ __forceinline__ float from_float<float>(float x) { return x; }
template <>
__device__ __forceinline__ __nv_bfloat16 from_float<__nv_bfloat16>(float x) { return __float2bfloat16_rn(x); }

// exp with the CPU twin's range (cpu/simd.h): exactly 0 below -87.9, saturating above 88.7, NaN
// stays NaN. Accurate expf (<= 2 ulp) inside, like the CPU's polynomial.
__device__ __forceinline__ float exp_like_cpu(float x) {
  if (x < -87.9f) return 0.f;
  return expf(x > 88.7f ? 88.7f : x);
}

// ---- vectors of eight elements: 32 bytes of float (two 128-bit accesses) or 16 bytes of bf16 (one).
// The address must be 16-byte aligned; split_row below finds the aligned middle of a row.
constexpr int kVec = 8;

__device__ __forceinline__ void load8(const float* p, float (&v)[kVec]) {
  const float4 a = reinterpret_cast<const float4*>(p)[0];
  const float4 b = reinterpret_cast<const float4*>(p)[1];
  v[0] = a.x, v[1] = a.y, v[2] = a.z, v[3] = a.w;
  v[4] = b.x, v[5] = b.y, v[6] = b.z, v[7] = b.w;
}

__device__ __forceinline__ void load8(const __nv_bfloat16* p, float (&v)[kVec]) {
  const uint4 q = *reinterpret_cast<const uint4*>(p);
  const uint32_t w[4] = {q.x, q.y, q.z, q.w};
#pragma unroll
  for (int i = 0; i < 4; ++i) {
    // Little endian: the lower half-word is the element at the lower address. bf16 is the upper
    // half of a float32, so widening is a shift (exact).
    v[2 * i] = __uint_as_float(w[i] << 16);
    v[2 * i + 1] = __uint_as_float(w[i] & 0xffff0000u);
  }
}

__device__ __forceinline__ void store8(float* p, const float (&v)[kVec]) {
  reinterpret_cast<float4*>(p)[0] = make_float4(v[0], v[1], v[2], v[3]);
  reinterpret_cast<float4*>(p)[1] = make_float4(v[4], v[5], v[6], v[7]);
}

__device__ __forceinline__ uint32_t pack_bf16x2(float lo, float hi) {
  return static_cast<uint32_t>(__bfloat16_as_ushort(__float2bfloat16_rn(lo))) |
         (static_cast<uint32_t>(__bfloat16_as_ushort(__float2bfloat16_rn(hi))) << 16);
}

__device__ __forceinline__ void store8(__nv_bfloat16* p, const float (&v)[kVec]) {
  *reinterpret_cast<uint4*>(p) =
      make_uint4(pack_bf16x2(v[0], v[1]), pack_bf16x2(v[2], v[3]), pack_bf16x2(v[4], v[5]), pack_bf16x2(v[6], v[7]));
}

__device__ __forceinline__ bool aligned16(const void* p) { return (reinterpret_cast<uintptr_t>(p) & 15u) == 0; }

// A row of `len` elements as [0, head) scalars, `nvec` aligned vectors from `head`, and scalars
// from `tail` to `len`. Rows of a [N, V] matrix start anywhere when V is not a multiple of 8, so
// the split is per row; element pointers are always aligned to sizeof(T).
struct RowSplit {
  int64_t head, nvec, tail;
};

template <typename T>
__device__ __forceinline__ RowSplit split_row(const T* row, int64_t len) {
  const int64_t misalign = static_cast<int64_t>(reinterpret_cast<uintptr_t>(row) & 15u);
  int64_t head = ((16 - misalign) & 15) / static_cast<int64_t>(sizeof(T));
  head = head < len ? head : len;
  const int64_t nvec = (len - head) / kVec;
  return {head, nvec, head + nvec * kVec};
}

// ---- reductions. Blocks are a multiple of 32 threads (every launcher picks such a size), so
// full-mask shuffles are valid; the sum order is fixed for a block size: results are deterministic.
template <typename T>
__device__ __forceinline__ T warp_sum(T x) {
#pragma unroll
  for (int offset = 16; offset > 0; offset >>= 1) x += __shfl_xor_sync(kFullMask, x, offset);
  return x;
}

// Sum over the block, returned to every thread. Ends with a barrier so it can be called again
// (or shared memory reused) straight away. Every thread of the block must call it.
template <typename T>
__device__ T block_sum(T x) {
  __shared__ T partial[32];
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, warps = blockDim.x >> 5;
  x = warp_sum(x);
  if (lane == 0) partial[warp] = x;
  __syncthreads();
  T total = lane < warps ? partial[lane] : T(0);
  total = warp_sum(total);
  __syncthreads();
  return total;
}

// Grid size for a grid-stride loop over `items` blocks' worth of work (CUDA caps gridDim.x).
inline unsigned grid_for(int64_t items, int64_t cap = 2147483647) {
  return static_cast<unsigned>(items < cap ? items : cap);
}

}  // namespace othink::cuda::dev
