// CUDA twin of cpu/copy.h's block copy: rows of `cols` floats between row-strided layouts
// (concat / split / narrow along any axis), device to device, enqueued on `stream`
// (cuda/stream.cuh). Plain C++ includes this header.
#pragma once
#include <cuda_runtime_api.h>

#include <cstdint>

namespace othink::cuda {

// dst[r * ld_dst + c] = src[r * ld_src + c] for r < rows, c < cols (cols <= both strides). The two
// ranges must not overlap.
void copy_2d(float* dst, int64_t ld_dst, const float* src, int64_t ld_src, int64_t rows, int64_t cols,
             cudaStream_t stream);

}  // namespace othink::cuda
