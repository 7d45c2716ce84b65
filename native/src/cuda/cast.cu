// Casts: memory bound, one grid-stride loop, 256 threads a block, at most kMaxBlocks blocks.
// The rounding is cpu::float_to_bf16's bit formula rather than __float2bfloat16_rn, whose NaN
// result is a canonical NaN (the sign and payload lost): the CPU and GPU casts then agree on every
// bit pattern, NaNs included, and the CPU tests pin the behaviour of both.
#include <cuda_runtime.h>

#include <cstdint>

#include "cuda/cast.cuh"
#include "cuda/check.cuh"
#include "cuda/device_utils.cuh"

namespace othink::cuda {

namespace {

constexpr int kThreads = 256;
constexpr int64_t kMaxBlocks = 65536;

unsigned blocks_for(int64_t n) { return dev::grid_for((n + kThreads - 1) / kThreads, kMaxBlocks); }

__device__ __forceinline__ uint16_t to_bf16(float f) {
  const uint32_t bits = __float_as_uint(f);
  if ((bits & 0x7f800000u) == 0x7f800000u && (bits & 0x7fffffu) != 0) return static_cast<uint16_t>((bits >> 16) | 0x40u);
  return static_cast<uint16_t>((bits + 0x7fffu + ((bits >> 16) & 1u)) >> 16);
}

__global__ void f32_to_bf16_kernel(const float* x, uint16_t* out, int64_t n) {
  const int64_t stride = static_cast<int64_t>(gridDim.x) * blockDim.x;
  for (int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; i < n; i += stride)
    out[i] = to_bf16(x[i]);
}

__global__ void bf16_to_f32_kernel(const uint16_t* x, float* out, int64_t n) {
  const int64_t stride = static_cast<int64_t>(gridDim.x) * blockDim.x;
  for (int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; i < n; i += stride)
    out[i] = __uint_as_float(static_cast<uint32_t>(x[i]) << 16);
}

}  // namespace

void cast_f32_to_bf16(const float* x, uint16_t* out, int64_t n, cudaStream_t stream) {
  if (n <= 0) return;
  f32_to_bf16_kernel<<<blocks_for(n), kThreads, 0, stream>>>(x, out, n);
  OTHINK_CUDA_CHECK_LAUNCH();
}

void cast_bf16_to_f32(const uint16_t* x, float* out, int64_t n, cudaStream_t stream) {
  if (n <= 0) return;
  bf16_to_f32_kernel<<<blocks_for(n), kThreads, 0, stream>>>(x, out, n);
  OTHINK_CUDA_CHECK_LAUNCH();
}

}  // namespace othink::cuda
