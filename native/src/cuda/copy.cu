// The strided block copy: one cudaMemcpyAsync when both layouts are contiguous (the copy engine at
// full bandwidth), else a grid-stride kernel over (row, column) with columns fastest, so each warp
// reads and writes 32 neighbouring floats. (cudaMemcpy2DAsync would do too, but it caps the pitch
// below 2 GiB, which long rows of a large tensor can exceed.)
#include <cuda_runtime.h>

#include <algorithm>
#include <cstdint>

#include "cuda/check.cuh"
#include "cuda/copy.cuh"

namespace othink::cuda {

namespace {

constexpr int kThreads = 256;
constexpr int64_t kMaxBlocks = 65536;

__global__ void copy_2d_kernel(float* dst, int64_t ld_dst, const float* src, int64_t ld_src, int64_t rows,
                               int64_t cols) {
  const int64_t n = rows * cols;
  const int64_t stride = static_cast<int64_t>(gridDim.x) * blockDim.x;
  for (int64_t idx = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; idx < n; idx += stride) {
    const int64_t r = idx / cols, c = idx % cols;
    dst[r * ld_dst + c] = src[r * ld_src + c];
  }
}

}  // namespace

void copy_2d(float* dst, int64_t ld_dst, const float* src, int64_t ld_src, int64_t rows, int64_t cols,
             cudaStream_t stream) {
  if (rows <= 0 || cols <= 0) return;
  if (cols > ld_dst || cols > ld_src) throw_bad_argument("copy_2d", "cols exceeds a row stride");
  if (rows == 1 || (ld_dst == cols && ld_src == cols)) {
    OTHINK_CUDA_CHECK(cudaMemcpyAsync(dst, src, static_cast<size_t>(rows * cols) * sizeof(float),
                                      cudaMemcpyDeviceToDevice, stream));
    return;
  }
  const int64_t blocks = std::min((rows * cols + kThreads - 1) / kThreads, kMaxBlocks);
  copy_2d_kernel<<<static_cast<unsigned>(blocks), kThreads, 0, stream>>>(dst, ld_dst, src, ld_src, rows, cols);
  OTHINK_CUDA_CHECK_LAUNCH();
}

}  // namespace othink::cuda
