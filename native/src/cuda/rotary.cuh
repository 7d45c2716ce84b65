// CUDA twin of cpu/rotary.h: the half-split ("rotate_half") rotary embedding of Qwen2-VL and its
// transpose, on device pointers. Launchers return at once; a bad configuration throws
// othink::cuda::CudaError. Plain C++ includes this header (the N-API bridge): no device code here.
#pragma once
#include <cuda_runtime_api.h>

#include <cstdint>

namespace othink::cuda {

// T: float or __nv_bfloat16 for x / out (math in float32, one rounding at the store); the tables
// cos, sin [rows, dim] are float32 (the vision tower rotates in float32, spec §8.2; for the LLM's
// bf16 tables, spec §8.3, pass them already rounded to bf16). x, out [rows, heads, dim], dim even:
//   out = x * cos + rotate_half(x) * sin,  rotate_half(x) = [-x2, x1].  out may alias x.
template <typename T>
void rotary_forward(const T* x, const float* cos, const float* sin, T* out, int64_t rows, int64_t heads,
                    int64_t dim, cudaStream_t stream);

// The transpose (d/dx of sum(grad * out)), as cpu::rotary_backward. dx may alias grad.
template <typename T>
void rotary_backward(const T* grad, const float* cos, const float* sin, T* dx, int64_t rows, int64_t heads,
                     int64_t dim, cudaStream_t stream);

}  // namespace othink::cuda
