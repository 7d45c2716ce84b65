// The AdamW update as one elementwise pass. The per-step constants are computed on the host in
// double exactly as the CPU twin does, and the per-element formula is the CPU's, term for term
// (IEEE sqrt and division: the build has no --use_fast_math), so both agree to float rounding.
#include <cuda_runtime.h>

#include <algorithm>
#include <cmath>
#include <cstdint>

#include "cuda/adamw.cuh"
#include "cuda/check.cuh"

namespace othink::cuda {

namespace {

constexpr int kThreads = 256;
constexpr int64_t kMaxBlocks = 65536;

struct StepConstants {
  float step_size, inv_bc2_sqrt, decay, b1, b2, one_b1, one_b2, eps, grad_scale;
};

__global__ void adamw_kernel(float* param, const float* grad, float* m, float* v, int64_t n, StepConstants c) {
  const int64_t stride = static_cast<int64_t>(gridDim.x) * blockDim.x;
  for (int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; i < n; i += stride) {
    const float g = grad[i] * c.grad_scale;
    const float mi = c.b1 * m[i] + c.one_b1 * g;
    const float vi = c.b2 * v[i] + c.one_b2 * g * g;
    m[i] = mi;
    v[i] = vi;
    param[i] = param[i] * c.decay - c.step_size * mi / (sqrtf(vi) * c.inv_bc2_sqrt + c.eps);
  }
}

}  // namespace

void adamw_step(float* param, const float* grad, float* m, float* v, int64_t n, const AdamWConfig& cfg,
                cudaStream_t stream) {
  if (n <= 0) return;
  if (cfg.step < 1) throw_bad_argument("adamw_step", "step must be >= 1");
  // Bias corrections in double: 1 - 0.999^t loses digits in float for small t.
  const double bc1 = 1.0 - std::pow(static_cast<double>(cfg.beta1), static_cast<double>(cfg.step));
  const double bc2 = 1.0 - std::pow(static_cast<double>(cfg.beta2), static_cast<double>(cfg.step));
  StepConstants c;
  c.step_size = static_cast<float>(cfg.lr / bc1);
  c.inv_bc2_sqrt = static_cast<float>(1.0 / std::sqrt(bc2));
  c.decay = 1.f - cfg.lr * cfg.weight_decay;
  c.b1 = cfg.beta1;
  c.b2 = cfg.beta2;
  c.one_b1 = 1.f - cfg.beta1;
  c.one_b2 = 1.f - cfg.beta2;
  c.eps = cfg.eps;
  c.grad_scale = cfg.grad_scale;
  const int64_t blocks = std::min((n + kThreads - 1) / kThreads, kMaxBlocks);
  adamw_kernel<<<static_cast<unsigned>(blocks), kThreads, 0, stream>>>(param, grad, m, v, n, c);
  OTHINK_CUDA_CHECK_LAUNCH();
}

}  // namespace othink::cuda
