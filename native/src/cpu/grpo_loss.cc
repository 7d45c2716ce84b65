#include "cpu/grpo_loss.h"

#include <algorithm>

#include "cpu/fast_exp.h"

namespace othink::cpu {

namespace {

template <KlEstimator E>
GrpoLossStats grpo_loss_impl(const float* logp, const float* old_logp, const float* ref_logp,
                             const float* adv, const float* mask, const GrpoLossConfig& c,
                             float* grad_logp, float* per_token_loss) {
  const int64_t S = c.seqs, T = c.tokens;
  double mask_sum = 0.0;
#pragma omp parallel for reduction(+ : mask_sum) if (S * T > 65536)
  for (int64_t i = 0; i < S * T; ++i) mask_sum += mask[i];

  // Weight of one unmasked token in the aggregate (the mask multiplies it per token).
  double token_weight = 0.0;  // for every type but grpo, whose weight depends on the sequence
  if (c.type == GrpoLossType::Bnpo) token_weight = 1.0 / std::max(mask_sum, 1.0);
  if (c.type == GrpoLossType::DrGrpo) token_weight = 1.0 / (c.normalizer > 0 ? c.normalizer : double(S * T));
  if (c.type == GrpoLossType::Dapo) token_weight = 1.0 / (c.normalizer > 0 ? c.normalizer : std::max(mask_sum, 1.0));

  const bool use_kl = ref_logp != nullptr;
  const float lo = 1.f - c.eps_low, hi = 1.f + c.eps_high;
  double loss = 0, kl_seq_mean_sum = 0, n_low = 0, n_high = 0, ratio_sum = 0;
#pragma omp parallel for reduction(+ : loss, kl_seq_mean_sum, n_low, n_high, ratio_sum) if (S * T > 16384)
  for (int64_t s = 0; s < S; ++s) {
    const float* lp = logp + s * T;
    const float* m = mask + s * T;
    double len = 0.0;
    for (int64_t t = 0; t < T; ++t) len += m[t];
    const float w_seq = static_cast<float>(
        c.type == GrpoLossType::Grpo ? 1.0 / (std::max(len, 1.0) * S) : token_weight);
    const float a = adv[s];
    float seq_loss = 0.f, seq_kl = 0.f, seq_low = 0.f, seq_high = 0.f, seq_ratio = 0.f;
#pragma omp simd reduction(+ : seq_loss, seq_kl, seq_low, seq_high, seq_ratio)
    for (int64_t t = 0; t < T; ++t) {
      const float ratio = old_logp ? fast_exp(lp[t] - old_logp[s * T + t]) : 1.f;
      const float clipped_ratio = std::min(std::max(ratio, lo), hi);
      const float surr = std::min(ratio * a, clipped_ratio * a);
      const bool clip_low = a < 0.f && ratio < lo;
      const bool clip_high = a > 0.f && ratio > hi;
      float kl_value = 0.f, kl_grad = 0.f;
      if (use_kl) {
        const KlValue kv = kl_token<E>(lp[t], ref_logp[s * T + t], c.kl_clamp);
        kl_value = kv.value;
        kl_grad = kv.grad;
      }
      const float ptl = c.beta != 0.f ? -surr + c.beta * kl_value : -surr;
      const float w = w_seq * m[t];
      if (per_token_loss) per_token_loss[s * T + t] = ptl;
      if (grad_logp) {
        const float g_surr = (clip_low || clip_high) ? 0.f : -a * ratio;
        grad_logp[s * T + t] = w * (c.beta != 0.f ? g_surr + c.beta * kl_grad : g_surr);
      }
      seq_loss += w * ptl;
      seq_kl += m[t] * kl_value;
      seq_low += clip_low ? m[t] : 0.f;
      seq_high += clip_high ? m[t] : 0.f;
      seq_ratio += m[t] * ratio;
    }
    loss += seq_loss;
    kl_seq_mean_sum += seq_kl / std::max(len, 1.0);
    n_low += seq_low;
    n_high += seq_high;
    ratio_sum += seq_ratio;
  }
  GrpoLossStats st;
  const double tokens = std::max(mask_sum, 1.0);
  st.loss = loss;
  st.mean_kl = S > 0 ? kl_seq_mean_sum / S : 0.0;
  st.clip_low = n_low / tokens;
  st.clip_high = n_high / tokens;
  st.clip_region = (n_low + n_high) / tokens;
  st.mean_ratio = ratio_sum / tokens;
  st.mask_sum = mask_sum;
  return st;
}

}  // namespace

GrpoLossStats grpo_loss(const float* logp, const float* old_logp, const float* ref_logp,
                        const float* advantages, const float* mask, const GrpoLossConfig& cfg,
                        float* grad_logp, float* per_token_loss) {
  switch (cfg.kl) {
    case KlEstimator::K1:
      return grpo_loss_impl<KlEstimator::K1>(logp, old_logp, ref_logp, advantages, mask, cfg, grad_logp, per_token_loss);
    case KlEstimator::K2:
      return grpo_loss_impl<KlEstimator::K2>(logp, old_logp, ref_logp, advantages, mask, cfg, grad_logp, per_token_loss);
    case KlEstimator::Abs:
      return grpo_loss_impl<KlEstimator::Abs>(logp, old_logp, ref_logp, advantages, mask, cfg, grad_logp, per_token_loss);
    case KlEstimator::K3:
    default:
      return grpo_loss_impl<KlEstimator::K3>(logp, old_logp, ref_logp, advantages, mask, cfg, grad_logp, per_token_loss);
  }
}

}  // namespace othink::cpu
