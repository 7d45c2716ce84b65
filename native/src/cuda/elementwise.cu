// Elementwise kernels: memory bound, so one grid-stride loop per op, 256 threads a block, at most
// kMaxBlocks blocks (enough to fill any GPU; the loop covers the rest). Indices are 32-bit when the
// tensor allows it (integer division by b_len is the costliest instruction here) and 64-bit otherwise.
#include <cuda_runtime.h>

#include <cstdint>

#include "cuda/check.cuh"
#include "cuda/device_utils.cuh"
#include "cuda/elementwise.cuh"

namespace othink::cuda {

namespace {

constexpr int kThreads = 256;
constexpr int64_t kMaxBlocks = 65536;

unsigned blocks_for(int64_t n) { return dev::grid_for((n + kThreads - 1) / kThreads, kMaxBlocks); }

bool fits_int32(int64_t n) { return n <= INT32_MAX - static_cast<int64_t>(kThreads) * kMaxBlocks; }

template <BinaryOp Op>
__device__ __forceinline__ float apply(float x, float y) {
  if constexpr (Op == BinaryOp::Add) return x + y;
  if constexpr (Op == BinaryOp::Sub) return x - y;
  return x * y;
}

// Index: int32_t or int64_t; `fits_int32` keeps i + stride from overflowing the 32-bit loop.
template <BinaryOp Op, typename Index>
__global__ void binary_kernel(const float* a, const float* b, float* out, Index n, Index b_len) {
  const Index stride = static_cast<Index>(gridDim.x) * blockDim.x;
  if (b_len == n) {
    for (Index i = static_cast<Index>(blockIdx.x) * blockDim.x + threadIdx.x; i < n; i += stride)
      out[i] = apply<Op>(a[i], b[i]);
  } else {
    for (Index i = static_cast<Index>(blockIdx.x) * blockDim.x + threadIdx.x; i < n; i += stride)
      out[i] = apply<Op>(a[i], b[i % b_len]);
  }
}

template <BinaryOp Op>
void launch_binary(const float* a, const float* b, float* out, int64_t n, int64_t b_len, cudaStream_t stream) {
  if (fits_int32(n))
    binary_kernel<Op, int32_t><<<blocks_for(n), kThreads, 0, stream>>>(a, b, out, static_cast<int32_t>(n),
                                                                        static_cast<int32_t>(b_len));
  else
    binary_kernel<Op, int64_t><<<blocks_for(n), kThreads, 0, stream>>>(a, b, out, n, b_len);
  OTHINK_CUDA_CHECK_LAUNCH();
}

__global__ void affine_kernel(const float* a, float* out, int64_t n, float alpha, float beta) {
  const int64_t stride = static_cast<int64_t>(gridDim.x) * blockDim.x;
  for (int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; i < n; i += stride)
    out[i] = alpha * a[i] + beta;
}

__global__ void axpy_kernel(float alpha, const float* x, float* y, int64_t n) {
  const int64_t stride = static_cast<int64_t>(gridDim.x) * blockDim.x;
  for (int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; i < n; i += stride)
    y[i] += alpha * x[i];
}

__global__ void fill_kernel(float* out, int64_t n, float value) {
  const int64_t stride = static_cast<int64_t>(gridDim.x) * blockDim.x;
  for (int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; i < n; i += stride) out[i] = value;
}

}  // namespace

void binary(BinaryOp op, const float* a, const float* b, float* out, int64_t n, int64_t b_len, cudaStream_t stream) {
  if (n <= 0) return;  // an empty grid is an invalid launch
  if (b_len < 1 || n % b_len != 0) throw_bad_argument("binary", "b_len must divide n");
  switch (op) {
    case BinaryOp::Add: return launch_binary<BinaryOp::Add>(a, b, out, n, b_len, stream);
    case BinaryOp::Sub: return launch_binary<BinaryOp::Sub>(a, b, out, n, b_len, stream);
    case BinaryOp::Mul: return launch_binary<BinaryOp::Mul>(a, b, out, n, b_len, stream);
  }
}

void affine(const float* a, float* out, int64_t n, float alpha, float beta, cudaStream_t stream) {
  if (n <= 0) return;
  affine_kernel<<<blocks_for(n), kThreads, 0, stream>>>(a, out, n, alpha, beta);
  OTHINK_CUDA_CHECK_LAUNCH();
}

void axpy(float alpha, const float* x, float* y, int64_t n, cudaStream_t stream) {
  if (n <= 0) return;
  axpy_kernel<<<blocks_for(n), kThreads, 0, stream>>>(alpha, x, y, n);
  OTHINK_CUDA_CHECK_LAUNCH();
}

void fill(float* out, int64_t n, float value, cudaStream_t stream) {
  if (n <= 0) return;
  fill_kernel<<<blocks_for(n), kThreads, 0, stream>>>(out, n, value);
  OTHINK_CUDA_CHECK_LAUNCH();
}

}  // namespace othink::cuda
