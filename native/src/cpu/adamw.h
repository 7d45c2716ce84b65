// Fused AdamW update (Loshchilov & Hutter; torch.optim.AdamW's algorithm): decoupled weight decay,
// bias-corrected moments, float32 master weights and moments.
#pragma once
#include <cstdint>

namespace othink::cpu {

struct AdamWConfig {
  float lr = 1e-3f, beta1 = 0.9f, beta2 = 0.999f, eps = 1e-8f, weight_decay = 0.01f;
  int64_t step = 1;         // 1-based step count, for the bias corrections
  float grad_scale = 1.0f;  // multiplies the gradient first (global-norm clipping, loss scaling)
};

// p *= 1 - lr * wd;  m = b1 m + (1 - b1) g;  v = b2 v + (1 - b2) g^2;
// p -= lr / (1 - b1^t) * m / (sqrt(v) / sqrt(1 - b2^t) + eps)
void adamw_step(float* param, const float* grad, float* m, float* v, int64_t n, const AdamWConfig& cfg);

}  // namespace othink::cpu
