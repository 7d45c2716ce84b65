#include "cpu/kl.h"

namespace othink::cpu {

namespace {
template <KlEstimator E>
void kl_penalty_impl(const float* logp, const float* ref, int64_t n, float clamp, float* values,
                     float* grads) {
#pragma omp parallel for simd if (n > 262144)
  for (int64_t i = 0; i < n; ++i) {
    const KlValue kv = kl_token<E>(logp[i], ref[i], clamp);
    values[i] = kv.value;
    if (grads) grads[i] = kv.grad;
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
