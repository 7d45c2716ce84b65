#include "cpu/grpo_loss.h"

#include <algorithm>

#include "cpu/simd.h"

namespace othink::cpu {

namespace {

// The per-lane float32 sums of a sequence are flushed into float64 every kFlushTokens tokens, so
// the loss and statistics of a sequence of any length keep float64 precision (float32 lanes
// summing 62,500 same-signed terms each, for a million tokens, were off by 1.4e-4 relative; now
// 1.2e-7). Up to kFlushTokens tokens there is one flush, at the end: the single float32 pass it
// always was, bit for bit.
constexpr int64_t kFlushTokens = 1024;

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

  using simd::f32v;
  using simd::kLanes;
  const bool use_kl = ref_logp != nullptr;
  const f32v lo = simd::splat(1.f - c.eps_low), hi = simd::splat(1.f + c.eps_high);
  const f32v zero = simd::splat(0.f), one = simd::splat(1.f);
  double loss = 0, kl_seq_mean_sum = 0, n_low = 0, n_high = 0, ratio_sum = 0;
#pragma omp parallel for reduction(+ : loss, kl_seq_mean_sum, n_low, n_high, ratio_sum) if (S * T > 16384)
  for (int64_t s = 0; s < S; ++s) {
    const int64_t row = s * T;
    double len = 0.0;
    for (int64_t t = 0; t < T; ++t) len += mask[row + t];
    const float w_seq = static_cast<float>(
        c.type == GrpoLossType::Grpo ? 1.0 / (std::max(len, 1.0) * S) : token_weight);
    const f32v a = simd::splat(adv[s]);
    f32v acc_loss = zero, acc_kl = zero, acc_low = zero, acc_high = zero, acc_ratio = zero;
    double seq_loss = 0, seq_kl = 0, seq_low = 0, seq_high = 0, seq_ratio = 0;
    for (int64_t t = 0; t < T; t += kLanes) {
      const int64_t lanes = std::min(kLanes, T - t);
      const bool full = lanes == kLanes;
      // Tail lanes load mask 0: they add nothing to any sum and are never stored.
      auto load = [&](const float* p) { return full ? simd::load(p + row + t) : simd::load_partial(p + row + t, lanes, 0.f); };
      const f32v lp = load(logp), m = load(mask);
      const f32v ratio = old_logp ? simd::exp(lp - load(old_logp)) : one;
      const f32v clipped_ratio = simd::min(simd::max(ratio, lo), hi);
      const f32v surr = simd::min(ratio * a, clipped_ratio * a);
      const auto clip_low = a < 0.f && ratio < lo;
      const auto clip_high = a > 0.f && ratio > hi;
      KlValue kv{zero, zero};
      if (use_kl) kv = kl_token<E>(lp, load(ref_logp), c.kl_clamp);
      const f32v ptl = c.beta != 0.f ? c.beta * kv.value - surr : -surr;
      const f32v w = w_seq * m;
      const f32v g_surr = (clip_low || clip_high) ? zero : -a * ratio;
      const f32v grad = c.beta != 0.f ? w * (g_surr + c.beta * kv.grad) : w * g_surr;
      auto store = [&](float* p, f32v v) { full ? simd::store(p + row + t, v) : simd::store_partial(p + row + t, v, lanes); };
      if (per_token_loss) store(per_token_loss, ptl);
      if (grad_logp) store(grad_logp, grad);
      acc_loss += w * ptl;
      acc_kl += m * kv.value;
      acc_low += clip_low ? m : zero;
      acc_high += clip_high ? m : zero;
      acc_ratio += m * ratio;
      if ((t + kLanes) % kFlushTokens == 0 || t + kLanes >= T) {
        seq_loss += simd::reduce_add(acc_loss);
        seq_kl += simd::reduce_add(acc_kl);
        seq_low += simd::reduce_add(acc_low);
        seq_high += simd::reduce_add(acc_high);
        seq_ratio += simd::reduce_add(acc_ratio);
        acc_loss = acc_kl = acc_low = acc_high = acc_ratio = zero;
      }
    }
    loss += seq_loss;
    kl_seq_mean_sum += seq_kl / std::max(len, 1.0);
    n_low += seq_low;
    n_high += seq_high;
    ratio_sum += seq_ratio;
  }
  if (grad_logp && c.scale != 1.0) {
#pragma omp parallel for if (S * T > 65536)
    for (int64_t i = 0; i < S * T; ++i) grad_logp[i] = static_cast<float>(static_cast<double>(grad_logp[i]) * c.scale);
  }
  GrpoLossStats st;
  const double tokens = std::max(mask_sum, 1.0);
  st.loss = loss * c.scale;
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
