// CUDA twin of cpu/reduce.h: sums over one axis of a contiguous float32 tensor viewed as
// [outer, axis, inner], the broadcast that is their backward, and the sum of squares. Sums
// accumulate in double like the CPU twin, in a fixed order (deterministic for given sizes).
// Launchers enqueue on `stream` (cuda/stream.cuh); sum_squares returns a number, so it waits.
// Plain C++ includes this header.
#pragma once
#include <cuda_runtime_api.h>

#include <cstdint>

namespace othink::cuda {

// out[o, i] = scale * sum_a x[o, a, i]   (outer, axis, inner >= 1)
void sum_axis(const float* x, float* out, int64_t outer, int64_t axis, int64_t inner, float scale,
              cudaStream_t stream);

// out[o, a, i] = scale * g[o, i]
void broadcast_axis(const float* g, float* out, int64_t outer, int64_t axis, int64_t inner, float scale,
                    cudaStream_t stream);

// sum_i x[i]^2 in double (gradient norms). Synchronises `stream` to return the value.
double sum_squares(const float* x, int64_t n, cudaStream_t stream);

}  // namespace othink::cuda
