// CUDA twin of cpu/norm.h: RMSNorm and LayerNorm over the last dimension of [rows, hidden], forward
// and backward. Launchers take device pointers and a stream and return at once; a bad argument
// throws std::invalid_argument, a failed launch othink::cuda::CudaError. Plain C++ includes this
// header (the N-API bridge): no device code here.
//
// T is float or __nv_bfloat16 for x, weight, bias, y, the output gradient and dx; the per-row
// statistics (rstd, mean) and the weight / bias gradients are float32, and all math is float32
// (the CPU twin accumulates in float64). bfloat16 rounding follows HF (spec §3.2, §8.6): RMSNorm
// rounds the normalised row to bf16 before the product with the weight; LayerNorm rounds once.
#pragma once
#include <cuda_runtime_api.h>

#include <cstddef>
#include <cstdint>

namespace othink::cuda {

// y = (x * rstd) * w, rstd = 1 / sqrt(mean(x^2) + eps) written to rstd [rows].
template <typename T>
void rms_norm_forward(const T* x, const T* w, int64_t rows, int64_t hidden, float eps, T* y, float* rstd,
                      cudaStream_t stream);

// y = ((x - mean) * rstd) * w + b (biased variance); mean, rstd [rows] written.
template <typename T>
void layer_norm_forward(const T* x, const T* w, const T* b, int64_t rows, int64_t hidden, float eps, T* y,
                        float* mean, float* rstd, cudaStream_t stream);

// Device scratch of the backward launchers, in bytes: per-chunk partial column sums of dw / db,
// reduced in a fixed order afterwards (deterministic, no atomics). 0 when no dw / db is wanted.
size_t norm_backward_workspace_bytes(int64_t rows, int64_t hidden);

// dx [rows, hidden] (T), dw [hidden] (float): either may be null. See cpu/norm.h for the formulas.
template <typename T>
void rms_norm_backward(const T* g, const T* x, const T* w, const float* rstd, int64_t rows, int64_t hidden, T* dx,
                       float* dw, void* workspace, size_t workspace_bytes, cudaStream_t stream);

// dx (T), dw and db (float): any may be null.
template <typename T>
void layer_norm_backward(const T* g, const T* x, const T* w, const float* mean, const float* rstd, int64_t rows,
                         int64_t hidden, T* dx, float* dw, float* db, void* workspace, size_t workspace_bytes,
                         cudaStream_t stream);

}  // namespace othink::cuda
