// CUDA twin of cpu/adamw.h: the fused AdamW update (torch.optim.AdamW's algorithm) on float32
// device memory, in place, enqueued on `stream` (cuda/stream.cuh). Plain C++ includes this header.
#pragma once
#include <cuda_runtime_api.h>

#include <cstdint>

namespace othink::cuda {

// The fields of cpu::AdamWConfig (the CUDA headers do not include cpu/*.h).
struct AdamWConfig {
  float lr = 1e-3f, beta1 = 0.9f, beta2 = 0.999f, eps = 1e-8f, weight_decay = 0.01f;
  int64_t step = 1;         // 1-based step count, for the bias corrections
  float grad_scale = 1.0f;  // multiplies the gradient first (global-norm clipping, loss scaling)
};

// p *= 1 - lr * wd;  m = b1 m + (1 - b1) g;  v = b2 v + (1 - b2) g^2;
// p -= lr / (1 - b1^t) * m / (sqrt(v) / sqrt(1 - b2^t) + eps)
void adamw_step(float* param, const float* grad, float* m, float* v, int64_t n, const AdamWConfig& cfg,
                cudaStream_t stream);

}  // namespace othink::cuda
