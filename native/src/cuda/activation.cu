// Activations on the GPU (twin of cpu/activation.cc): elementwise, grid-stride, one functor per
// formula so forward and backward share the launch code.
#include <cuda_bf16.h>

#include <algorithm>

#include "cuda/activation.cuh"
#include "cuda/check.cuh"
#include "cuda/device_utils.cuh"

namespace othink::cuda {
namespace {

using dev::from_float;
using dev::to_float;

constexpr int kThreads = 256;
// QuickGELU's slope (spec §2.5) and the constants of the exact GELU (spec §2.6).
constexpr float kQuickGeluAlpha = 1.702f;
constexpr float kSqrtHalf = 0.70710678118654752440f;
constexpr float kInvSqrt2Pi = 0.39894228040143267794f;

__device__ __forceinline__ float sigmoid(float x) { return 1.f / (1.f + dev::exp_like_cpu(-x)); }

// Phi(x) with CUDA's erff (<= 2 ulp): the exact form, not the tanh approximation.
__device__ __forceinline__ float phi_cdf(float x) { return 0.5f * (1.f + erff(x * kSqrtHalf)); }

template <typename Fn>
__global__ void __launch_bounds__(kThreads) map_kernel(int64_t n, Fn fn) {
  const int64_t stride = static_cast<int64_t>(gridDim.x) * blockDim.x;
  for (int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; i < n; i += stride) fn(i);
}

template <typename Fn>
void launch(const char* name, int64_t n, bool pointers_ok, Fn fn, cudaStream_t stream) {
  if (n < 0) throw_bad_argument(name, "n must be >= 0");
  if (n == 0) return;
  if (!pointers_ok) throw_bad_argument(name, "the inputs and outputs must be device pointers");
  // Enough blocks to fill any current GPU several times over; the loop covers the rest.
  const int64_t blocks = std::min<int64_t>((n + kThreads - 1) / kThreads, 65536);
  map_kernel<<<static_cast<unsigned>(blocks), kThreads, 0, stream>>>(n, fn);
  OTHINK_CUDA_CHECK_LAUNCH();
}

// The functors (device lambdas would need --extended-lambda, which the build does not pass).
template <typename T>
struct SwigluForward {
  const T* gate;
  const T* up;
  T* out;
  __device__ void operator()(int64_t i) const {
    const float a = to_float(gate[i]);
    out[i] = from_float<T>((a * sigmoid(a)) * to_float(up[i]));
  }
};

template <typename T>
struct SwigluBackward {
  const T* g;
  const T* gate;
  const T* up;
  T* dgate;
  T* dup;
  __device__ void operator()(int64_t i) const {
    const float a = to_float(gate[i]), gv = to_float(g[i]);
    const float s = sigmoid(a);
    if (dgate) dgate[i] = from_float<T>(gv * to_float(up[i]) * (s * (1.f + a * (1.f - s))));
    if (dup) dup[i] = from_float<T>(gv * (a * s));
  }
};

template <typename T>
struct QuickGeluForward {
  const T* x;
  T* y;
  __device__ void operator()(int64_t i) const {
    const float v = to_float(x[i]);
    y[i] = from_float<T>(v * sigmoid(kQuickGeluAlpha * v));
  }
};

template <typename T>
struct QuickGeluBackward {
  const T* g;
  const T* x;
  T* dx;
  __device__ void operator()(int64_t i) const {
    const float v = to_float(x[i]);
    const float s = sigmoid(kQuickGeluAlpha * v);
    dx[i] = from_float<T>(to_float(g[i]) * (s + kQuickGeluAlpha * v * s * (1.f - s)));
  }
};

template <typename T>
struct GeluForward {
  const T* x;
  T* y;
  __device__ void operator()(int64_t i) const {
    const float v = to_float(x[i]);
    y[i] = from_float<T>(v * phi_cdf(v));
  }
};

template <typename T>
struct GeluBackward {
  const T* g;
  const T* x;
  T* dx;
  __device__ void operator()(int64_t i) const {
    const float v = to_float(x[i]);
    const float pdf = kInvSqrt2Pi * expf(-0.5f * v * v);
    dx[i] = from_float<T>(to_float(g[i]) * (phi_cdf(v) + v * pdf));
  }
};

}  // namespace

template <typename T>
void swiglu_forward(const T* gate, const T* up, T* out, int64_t n, cudaStream_t stream) {
  launch("swiglu_forward", n, gate && up && out, SwigluForward<T>{gate, up, out}, stream);
}

template <typename T>
void swiglu_backward(const T* g, const T* gate, const T* up, T* dgate, T* dup, int64_t n, cudaStream_t stream) {
  launch("swiglu_backward", n, g && gate && up, SwigluBackward<T>{g, gate, up, dgate, dup}, stream);
}

template <typename T>
void quick_gelu_forward(const T* x, T* y, int64_t n, cudaStream_t stream) {
  launch("quick_gelu_forward", n, x && y, QuickGeluForward<T>{x, y}, stream);
}

template <typename T>
void quick_gelu_backward(const T* g, const T* x, T* dx, int64_t n, cudaStream_t stream) {
  launch("quick_gelu_backward", n, g && x && dx, QuickGeluBackward<T>{g, x, dx}, stream);
}

template <typename T>
void gelu_forward(const T* x, T* y, int64_t n, cudaStream_t stream) {
  launch("gelu_forward", n, x && y, GeluForward<T>{x, y}, stream);
}

template <typename T>
void gelu_backward(const T* g, const T* x, T* dx, int64_t n, cudaStream_t stream) {
  launch("gelu_backward", n, g && x && dx, GeluBackward<T>{g, x, dx}, stream);
}

#define OTHINK_INSTANTIATE_ACTIVATION(T)                                                               \
  template void swiglu_forward<T>(const T*, const T*, T*, int64_t, cudaStream_t);                     \
  template void swiglu_backward<T>(const T*, const T*, const T*, T*, T*, int64_t, cudaStream_t);      \
  template void quick_gelu_forward<T>(const T*, T*, int64_t, cudaStream_t);                           \
  template void quick_gelu_backward<T>(const T*, const T*, T*, int64_t, cudaStream_t);                \
  template void gelu_forward<T>(const T*, T*, int64_t, cudaStream_t);                                 \
  template void gelu_backward<T>(const T*, const T*, T*, int64_t, cudaStream_t);
OTHINK_INSTANTIATE_ACTIVATION(float)
OTHINK_INSTANTIATE_ACTIVATION(__nv_bfloat16)
#undef OTHINK_INSTANTIATE_ACTIVATION

}  // namespace othink::cuda
