// The fused GRPO / GRPO-D loss over per-token log-probs (paper Eq. 4; TRL >= 0.16 clipped form):
//   ratio = exp(logp - old),  surr = min(ratio * A, clip(ratio, 1 - eps_low, 1 + eps_high) * A)
//   per_token_loss = -surr + beta * KL(logp, ref)        (KL left out entirely when beta == 0)
// aggregated by the loss type, with d loss / d logp and the statistics trainers log.
#pragma once
#include <cstdint>

#include "cpu/kl.h"

namespace othink::cpu {

enum class GrpoLossType {
  Grpo,    // mean over sequences of the per-sequence token mean (paper Eq. 4, TRL 0.14, R1-V)
  Bnpo,    // token mean over the micro-batch
  DrGrpo,  // token sum / (sequences * max completion length)  (Dr. GRPO)
  Dapo,    // token sum / tokens in the whole generation batch  (DAPO)
};

struct GrpoLossConfig {
  int64_t seqs = 0;    // S
  int64_t tokens = 0;  // T (stored completion length)
  float beta = 0.f, eps_low = 0.2f, eps_high = 0.2f;
  GrpoLossType type = GrpoLossType::Grpo;
  KlEstimator kl = KlEstimator::K3;
  float kl_clamp = 0.f;     // <= 0: no clamp
  double normalizer = 0.0;  // dr_grpo: S * max length (0 -> S * T); dapo: global tokens (0 -> sum mask)
  // Multiplies the loss and its gradient (a micro-batch's weight in the step), not per_token_loss.
  // The gradient is scaled in float64 and rounded once to float32: the same bits as scaling the
  // unscaled gradient in JS (float32 * number, stored in a Float32Array).
  double scale = 1.0;
};

struct GrpoLossStats {
  double loss = 0, mean_kl = 0, clip_low = 0, clip_high = 0, clip_region = 0, mean_ratio = 0;
  double mask_sum = 0;
};

// logp, old_logp, ref_logp, mask, grad_logp, per_token_loss: [S, T]; advantages: [S].
// old_logp null: old = logp (one update per generation, ratio 1). ref_logp may be null only when
// beta == 0 (then the KL statistics are 0). grad_logp and per_token_loss may be null.
GrpoLossStats grpo_loss(const float* logp, const float* old_logp, const float* ref_logp,
                        const float* advantages, const float* mask, const GrpoLossConfig& cfg,
                        float* grad_logp, float* per_token_loss);

}  // namespace othink::cpu
