// CUDA twin of cpu/sampling.h: greedy or sampled token ids and their log-probs, one block per row.
// Unlike the other CUDA headers this one uses the CPU header's types: cpu/sampling.h is plain C++
// (no vector extensions) and holds the arithmetic of a draw as __host__ __device__ functions, so
// both kernels run the same code for every decision. Plain C++ includes this header.
#pragma once
#include <cuda_runtime_api.h>

#include "cpu/sampling.h"

namespace othink::cuda {

// Every pointer of `args` is device memory. Asynchronous: returns once the kernel is queued.
// Rows whose per-row options are out of range, or whose logits leave nothing to choose, get id -1
// and log-prob NaN (the kernel cannot throw). Scratch: min(rows, 256) * vocab floats.
void sample_tokens(const sampling::Args& args, cudaStream_t stream);

}  // namespace othink::cuda
