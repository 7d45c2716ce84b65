// Rotary embedding on the GPU (twin of cpu/rotary.cc): one thread per (position, head, i < dim / 2)
// pair, grid-stride; the pair (i, i + dim / 2) is read before either element is written, so the
// rotation may run in place.
#include <cuda_bf16.h>

#include <algorithm>

#include "cuda/check.cuh"
#include "cuda/device_utils.cuh"
#include "cuda/rotary.cuh"

namespace othink::cuda {
namespace {

// x and out may alias: no __restrict__ on them.
template <typename T, bool kBackward>
__global__ void rotary_kernel(const T* x, const float* __restrict__ cos, const float* __restrict__ sin, T* out,
                              int64_t rows, int64_t heads, int64_t half) {
  const int64_t pairs = rows * heads * half;
  const int64_t stride = static_cast<int64_t>(gridDim.x) * blockDim.x;
  for (int64_t p = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; p < pairs; p += stride) {
    const int64_t i = p % half, t = p / half, r = t / heads;
    const int64_t at = t * 2 * half + i;
    const float* c = cos + r * 2 * half + i;
    const float* s = sin + r * 2 * half + i;
    const float a = dev::to_float(x[at]), b = dev::to_float(x[at + half]);
    float o1, o2;
    if (kBackward) {  // forward o1 = a c1 - b s1, o2 = b c2 + a s2; transpose:
      o1 = a * c[0] + b * s[half];
      o2 = b * c[half] - a * s[0];
    } else {
      o1 = a * c[0] - b * s[0];
      o2 = b * c[half] + a * s[half];
    }
    out[at] = dev::from_float<T>(o1);
    out[at + half] = dev::from_float<T>(o2);
  }
}

template <typename T, bool kBackward>
void launch(const char* fn, const T* x, const float* cos, const float* sin, T* out, int64_t rows, int64_t heads,
            int64_t dim, cudaStream_t stream) {
  if (rows < 0 || heads < 0 || dim < 2 || dim % 2 != 0)
    throw_bad_argument(fn, "needs rows, heads >= 0 and an even dim >= 2");
  const int64_t pairs = rows * heads * (dim / 2);
  if (pairs == 0) return;
  if (!x || !cos || !sin || !out) throw_bad_argument(fn, "x, cos, sin and out must be device pointers");
  constexpr int kThreads = 256;
  const int64_t blocks = std::min<int64_t>((pairs + kThreads - 1) / kThreads, 65536);
  rotary_kernel<T, kBackward>
      <<<static_cast<unsigned>(blocks), kThreads, 0, stream>>>(x, cos, sin, out, rows, heads, dim / 2);
  OTHINK_CUDA_CHECK_LAUNCH();
}

}  // namespace

template <typename T>
void rotary_forward(const T* x, const float* cos, const float* sin, T* out, int64_t rows, int64_t heads,
                    int64_t dim, cudaStream_t stream) {
  launch<T, false>("rotary_forward", x, cos, sin, out, rows, heads, dim, stream);
}

template <typename T>
void rotary_backward(const T* grad, const float* cos, const float* sin, T* dx, int64_t rows, int64_t heads,
                     int64_t dim, cudaStream_t stream) {
  launch<T, true>("rotary_backward", grad, cos, sin, dx, rows, heads, dim, stream);
}

using bf16 = __nv_bfloat16;
template void rotary_forward<float>(const float*, const float*, const float*, float*, int64_t, int64_t, int64_t,
                                    cudaStream_t);
template void rotary_forward<bf16>(const bf16*, const float*, const float*, bf16*, int64_t, int64_t, int64_t,
                                   cudaStream_t);
template void rotary_backward<float>(const float*, const float*, const float*, float*, int64_t, int64_t, int64_t,
                                     cudaStream_t);
template void rotary_backward<bf16>(const bf16*, const float*, const float*, bf16*, int64_t, int64_t, int64_t,
                                    cudaStream_t);

}  // namespace othink::cuda
