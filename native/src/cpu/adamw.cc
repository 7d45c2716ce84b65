#include "cpu/adamw.h"

#include <cmath>

namespace othink::cpu {

void adamw_step(float* param, const float* grad, float* m, float* v, int64_t n, const AdamWConfig& c) {
  // Bias corrections in double: 1 - 0.999^t loses digits in float for small t.
  const double bc1 = 1.0 - std::pow(static_cast<double>(c.beta1), static_cast<double>(c.step));
  const double bc2 = 1.0 - std::pow(static_cast<double>(c.beta2), static_cast<double>(c.step));
  const float step_size = static_cast<float>(c.lr / bc1);
  const float inv_bc2_sqrt = static_cast<float>(1.0 / std::sqrt(bc2));
  const float decay = 1.f - c.lr * c.weight_decay;
  const float b1 = c.beta1, b2 = c.beta2, one_b1 = 1.f - c.beta1, one_b2 = 1.f - c.beta2;
#pragma omp parallel for simd if (n > (1 << 16)) schedule(static)
  for (int64_t i = 0; i < n; ++i) {
    const float g = grad[i] * c.grad_scale;
    const float mi = b1 * m[i] + one_b1 * g;
    const float vi = b2 * v[i] + one_b2 * g * g;
    m[i] = mi;
    v[i] = vi;
    param[i] = param[i] * decay - step_size * mi / (std::sqrt(vi) * inv_bc2_sqrt + c.eps);
  }
}

}  // namespace othink::cpu
