// CUDA twin of cpu/kl.h: per-token KL estimators k1 / k2 / k3 / abs between policy and reference
// log-probs, with the optional clamp, and d value / d logp. The launcher is plain C++; the device
// form of one token (shared with cuda/grpo_loss.cu) is compiled only by nvcc.
#pragma once
#include <cuda_runtime_api.h>

#include <cstdint>

namespace othink::cuda {

// d = logp - ref:  k1 = d;  k2 = d^2 / 2;  k3 = exp(-d) + d - 1 (the paper's Eq. 5);  abs = |d|.
enum class KlEstimator { K1, K2, K3, Abs };

struct KlValue {
  float value, grad;  // the estimate and d estimate / d logp
};

// logp, ref, values [n]; grads [n] or null. Device pointers.
void kl_penalty(const float* logp, const float* ref, int64_t n, KlEstimator est, float clamp, float* values,
                float* grads, cudaStream_t stream);

}  // namespace othink::cuda

#ifdef __CUDACC__
#include "cuda/device_utils.cuh"

namespace othink::cuda::dev {

// exp(t) - 1 - t without cancellation, as the CPU twin: Taylor series sum_{k=2..12} t^k / k! for
// |t| < 1, direct beyond with the CPU's exp range.
__device__ __forceinline__ float exp_minus_one_minus_x(float t) {
  constexpr float kCoef[] = {1.f / 39916800.f, 1.f / 3628800.f, 1.f / 362880.f, 1.f / 40320.f, 1.f / 5040.f,
                             1.f / 720.f,      1.f / 120.f,     1.f / 24.f,     1.f / 6.f,     0.5f};
  float p = 1.f / 479001600.f;
#pragma unroll
  for (const float c : kCoef) p = p * t + c;
  const float series = p * t * t;
  const float direct = exp_like_cpu(t) - 1.f - t;
  return t < 1.f && t > -1.f ? series : direct;
}

// One estimator at one token (see cpu/kl.h). clamp > 0 clamps the value to [-clamp, clamp] with
// gradient 0 where the clamp is active; written as the CPU's max-then-min so NaN clamps alike.
template <KlEstimator E>
__device__ __forceinline__ KlValue kl_token(float logp, float ref, float clamp) {
  const float d = logp - ref;
  KlValue kv{d, 1.f};
  if constexpr (E == KlEstimator::K2) {
    kv = {0.5f * d * d, d};
  } else if constexpr (E == KlEstimator::K3) {
    const float v = exp_minus_one_minus_x(-d);
    kv = {v, d - v};  // 1 - exp(-d) = d - v
  } else if constexpr (E == KlEstimator::Abs) {
    kv = {d < 0.f ? -d : d, d > 0.f ? 1.f : (d < 0.f ? -1.f : 0.f)};
  }
  if (clamp > 0.f) {
    const bool clamped = kv.value > clamp || kv.value < -clamp;
    const float v = kv.value > -clamp ? kv.value : -clamp;
    kv.value = v < clamp ? v : clamp;
    kv.grad = clamped ? 0.f : kv.grad;
  }
  return kv;
}

}  // namespace othink::cuda::dev
#endif  // __CUDACC__
