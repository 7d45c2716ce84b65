// CUDA twin of cpu/activation.h: SwiGLU (silu(gate) * up), QuickGELU (x * sigmoid(1.702 x)) and the
// exact erf GELU, forward and backward, elementwise over n values. T is float or __nv_bfloat16
// for every array; the math is float32 with one rounding to T per output. The sigmoid uses the
// CPU twin's exp range (exactly 0 below -87.9, saturating above 88.7), so far-out inputs saturate
// alike. Plain C++ includes this header.
#pragma once
#include <cuda_runtime_api.h>

#include <cstdint>

namespace othink::cuda {

template <typename T>
void swiglu_forward(const T* gate, const T* up, T* out, int64_t n, cudaStream_t stream);
// dgate and dup may be null (not computed).
template <typename T>
void swiglu_backward(const T* g, const T* gate, const T* up, T* dgate, T* dup, int64_t n, cudaStream_t stream);

template <typename T>
void quick_gelu_forward(const T* x, T* y, int64_t n, cudaStream_t stream);
template <typename T>
void quick_gelu_backward(const T* g, const T* x, T* dx, int64_t n, cudaStream_t stream);

template <typename T>
void gelu_forward(const T* x, T* y, int64_t n, cudaStream_t stream);
template <typename T>
void gelu_backward(const T* g, const T* x, T* dx, int64_t n, cudaStream_t stream);

}  // namespace othink::cuda
