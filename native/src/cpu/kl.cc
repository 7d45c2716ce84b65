#include "cpu/kl.h"

#include <algorithm>

namespace othink::cpu {

namespace {
template <KlEstimator E>
void kl_penalty_impl(const float* logp, const float* ref, int64_t n, float clamp, float* values,
                     float* grads) {
  using simd::kLanes;
  const int64_t vectors = (n + kLanes - 1) / kLanes;
#pragma omp parallel for if (n > 262144)
  for (int64_t v = 0; v < vectors; ++v) {
    const int64_t i = v * kLanes, lanes = std::min(kLanes, n - i);
    const bool full = lanes == kLanes;
    const KlValue kv = kl_token<E>(full ? simd::load(logp + i) : simd::load_partial(logp + i, lanes, 0.f),
                                   full ? simd::load(ref + i) : simd::load_partial(ref + i, lanes, 0.f), clamp);
    full ? simd::store(values + i, kv.value) : simd::store_partial(values + i, kv.value, lanes);
    if (grads) full ? simd::store(grads + i, kv.grad) : simd::store_partial(grads + i, kv.grad, lanes);
  }
}
}  // namespace

void kl_penalty(const float* logp, const float* ref, int64_t n, KlEstimator est, float clamp,
                float* values, float* grads) {
  switch (est) {
    case KlEstimator::K1:
      return kl_penalty_impl<KlEstimator::K1>(logp, ref, n, clamp, values, grads);
    case KlEstimator::K2:
      return kl_penalty_impl<KlEstimator::K2>(logp, ref, n, clamp, values, grads);
    case KlEstimator::K3:
      return kl_penalty_impl<KlEstimator::K3>(logp, ref, n, clamp, values, grads);
    case KlEstimator::Abs:
      return kl_penalty_impl<KlEstimator::Abs>(logp, ref, n, clamp, values, grads);
  }
}

}  // namespace othink::cpu
