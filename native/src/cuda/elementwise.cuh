// CUDA twin of cpu/elementwise.h: binary ops with a trailing broadcast, affine maps, accumulation
// and fills on float32 device memory. Launchers enqueue on `stream` and return at once (see
// cuda/stream.cuh); a bad launch throws othink::cuda::CudaError. Plain C++ includes this header.
#pragma once
#include <cuda_runtime_api.h>

#include <cstdint>

namespace othink::cuda {

// Same values as cpu::BinaryOp (the CUDA headers do not include cpu/*.h).
enum class BinaryOp { Add, Sub, Mul };

// out[i] = a[i] op b[i % b_len], 0 <= i < n; b_len >= 1 divides n. out may alias a.
void binary(BinaryOp op, const float* a, const float* b, float* out, int64_t n, int64_t b_len, cudaStream_t stream);

// out[i] = alpha * a[i] + beta  (out may alias a)
void affine(const float* a, float* out, int64_t n, float alpha, float beta, cudaStream_t stream);

// y[i] += alpha * x[i]
void axpy(float alpha, const float* x, float* y, int64_t n, cudaStream_t stream);

void fill(float* out, int64_t n, float value, cudaStream_t stream);

}  // namespace othink::cuda
