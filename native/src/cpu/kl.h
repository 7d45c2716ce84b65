// Per-token KL estimators between the policy and the reference (Schulman, "Approximating KL
// divergence", 2020), as functions of logp (policy) and ref (reference) log-probs, d = logp - ref:
//   k1  = d                              d/dlogp = 1
//   k2  = d^2 / 2                        d/dlogp = d
//   k3  = exp(-d) + d - 1                d/dlogp = 1 - exp(-d)   (DeepSeek-R1; the paper's Eq. 5)
//   abs = |d|                            d/dlogp = sign(d)
#pragma once
#include <cstdint>
#include <initializer_list>

#include "cpu/simd.h"

namespace othink::cpu {

enum class KlEstimator { K1, K2, K3, Abs };

struct KlValue {
  simd::f32v value, grad;
};

// exp(t) - 1 - t without cancellation: Taylor series to t^11 for |t| < 1 (truncation < 3e-9
// relative), direct evaluation beyond (relative error < 1e-6 there).
inline simd::f32v exp_minus_one_minus_x(simd::f32v t) {
  using simd::f32v;
  f32v p = simd::splat(1.f / 479001600.f);
  for (const float c : {1.f / 39916800.f, 1.f / 3628800.f, 1.f / 362880.f, 1.f / 40320.f, 1.f / 5040.f,
                        1.f / 720.f, 1.f / 120.f, 1.f / 24.f, 1.f / 6.f, 0.5f})
    p = p * t + c;
  const f32v series = p * t * t;
  const f32v direct = simd::exp(t) - 1.f - t;
  return (t < 1.f && t > -1.f) ? series : direct;
}

// One estimator on 16 tokens. With clamp > 0 the value is clamped to [-clamp, clamp] and the
// gradient is 0 where the clamp is active.
template <KlEstimator E>
inline KlValue kl_token(simd::f32v logp, simd::f32v ref, float clamp) {
  using simd::f32v;
  const f32v d = logp - ref;
  const f32v zero = simd::splat(0.f), one = simd::splat(1.f);
  KlValue kv{d, one};
  if constexpr (E == KlEstimator::K2) {
    kv = {0.5f * d * d, d};
  } else if constexpr (E == KlEstimator::K3) {
    const f32v v = exp_minus_one_minus_x(-d);
    kv = {v, d - v};  // 1 - exp(-d) = d - v
  } else if constexpr (E == KlEstimator::Abs) {
    kv = {d < 0.f ? -d : d, d > 0.f ? one : (d < 0.f ? -one : zero)};
  }
  if (clamp > 0.f) {
    const auto clamped = kv.value > clamp || kv.value < -clamp;
    kv.value = simd::min(simd::max(kv.value, simd::splat(-clamp)), simd::splat(clamp));
    kv.grad = clamped ? zero : kv.grad;
  }
  return kv;
}

// values [n]; grads [n] or null.
void kl_penalty(const float* logp, const float* ref, int64_t n, KlEstimator est, float clamp,
                float* values, float* grads);

}  // namespace othink::cpu
