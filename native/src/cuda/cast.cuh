// CUDA twin of cpu/cast.h: float32 <-> bfloat16 on device memory (bfloat16 as its raw 16 bits).
// Round to nearest even, NaN kept NaN, with the CPU's bit formula: both sides agree bit for bit.
// Launchers enqueue on `stream` and return at once; a bad launch throws othink::cuda::CudaError.
#pragma once
#include <cuda_runtime_api.h>

#include <cstdint>

namespace othink::cuda {

void cast_f32_to_bf16(const float* x, uint16_t* out, int64_t n, cudaStream_t stream);
void cast_bf16_to_f32(const uint16_t* x, float* out, int64_t n, cudaStream_t stream);

}  // namespace othink::cuda
