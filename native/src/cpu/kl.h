// Per-token KL estimators between the policy and the reference (Schulman, "Approximating KL
// divergence", 2020), as functions of logp (policy) and ref (reference) log-probs, d = logp - ref:
//   k1  = d                              d/dlogp = 1
//   k2  = d^2 / 2                        d/dlogp = d
//   k3  = exp(-d) + d - 1                d/dlogp = 1 - exp(-d)   (DeepSeek-R1; the paper's Eq. 5)
//   abs = |d|                            d/dlogp = sign(d)
#pragma once
#include <cmath>
#include <cstdint>

#include "cpu/fast_exp.h"

namespace othink::cpu {

enum class KlEstimator { K1, K2, K3, Abs };

struct KlValue {
  float value, grad;
};

// exp(t) - 1 - t without cancellation: Taylor series to t^9 for |t| < 1/2 (truncation < 3e-10
// relative), direct evaluation beyond. Branch-free so loops vectorise.
inline float exp_minus_one_minus_x(float t) {
  float p = 1.f / 362880.f;
  p = p * t + 1.f / 40320.f;
  p = p * t + 1.f / 5040.f;
  p = p * t + 1.f / 720.f;
  p = p * t + 1.f / 120.f;
  p = p * t + 1.f / 24.f;
  p = p * t + 1.f / 6.f;
  p = p * t + 0.5f;
  const float series = p * t * t;
  const float direct = fast_exp(t) - 1.f - t;
  return std::fabs(t) < 0.5f ? series : direct;
}

// One estimator at one token. With clamp > 0 the value is clamped to [-clamp, clamp] and the
// gradient is 0 where the clamp is active.
template <KlEstimator E>
inline KlValue kl_token(float logp, float ref, float clamp) {
  const float d = logp - ref;
  KlValue kv{0.f, 0.f};
  if constexpr (E == KlEstimator::K1) {
    kv = {d, 1.f};
  } else if constexpr (E == KlEstimator::K2) {
    kv = {0.5f * d * d, d};
  } else if constexpr (E == KlEstimator::K3) {
    const float v = exp_minus_one_minus_x(-d);
    kv = {v, d - v};  // 1 - exp(-d) = d - v
  } else {
    kv = {std::fabs(d), d > 0.f ? 1.f : (d < 0.f ? -1.f : 0.f)};
  }
  if (clamp > 0.f) {
    const bool clamped = kv.value > clamp || kv.value < -clamp;
    kv.value = kv.value > clamp ? clamp : (kv.value < -clamp ? -clamp : kv.value);
    kv.grad = clamped ? 0.f : kv.grad;
  }
  return kv;
}

// values [n]; grads [n] or null.
void kl_penalty(const float* logp, const float* ref, int64_t n, KlEstimator est, float clamp,
                float* values, float* grads);

}  // namespace othink::cpu
