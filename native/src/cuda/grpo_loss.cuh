// CUDA twin of cpu/grpo_loss.h: the fused GRPO / GRPO-D loss over per-token log-probs
//   ratio = exp(logp - old),  surr = min(ratio * A, clip(ratio, 1 - eps_low, 1 + eps_high) * A)
//   per_token_loss = -surr + beta * KL(logp, ref)        (KL left out entirely when beta == 0)
// aggregated by the loss type, with d loss / d logp and the statistics trainers log. The launcher
// is asynchronous: the statistics land in a device-side GrpoLossStats. Plain C++ includes this.
#pragma once
#include <cuda_runtime_api.h>

#include <cstddef>
#include <cstdint>

#include "cuda/kl.cuh"

namespace othink::cuda {

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
  // The gradient is scaled in float64 and rounded once, as the CPU twin does.
  double scale = 1.0;
};

// Plain doubles (no initialisers): the last kernel writes them in device memory.
struct GrpoLossStats {
  double loss, mean_kl, clip_low, clip_high, clip_region, mean_ratio, mask_sum;
};

// Device scratch of grpo_loss, in bytes: per-sequence lengths and partial sums.
size_t grpo_loss_workspace_bytes(int64_t seqs);

// logp, old_logp, ref_logp, mask, grad_logp, per_token_loss: [S, T]; advantages: [S]; stats: one
// GrpoLossStats; loss_out: one float (the loss, for a tensor that stays on the device); all device
// pointers. old_logp null: ratio 1. ref_logp may be null only when beta == 0 (then the KL
// statistics are 0). grad_logp, per_token_loss and loss_out may be null.
void grpo_loss(const float* logp, const float* old_logp, const float* ref_logp, const float* advantages,
               const float* mask, const GrpoLossConfig& cfg, float* grad_logp, float* per_token_loss,
               GrpoLossStats* stats, float* loss_out, void* workspace, size_t workspace_bytes,
               cudaStream_t stream);

// grpo_loss with its workspace and statistics in scratch from the caching allocator; waits for the
// stream and returns the statistics (the only copy back: sizeof(GrpoLossStats) bytes).
GrpoLossStats grpo_loss_stats(const float* logp, const float* old_logp, const float* ref_logp,
                              const float* advantages, const float* mask, const GrpoLossConfig& cfg,
                              float* grad_logp, float* per_token_loss, float* loss_out, cudaStream_t stream);

}  // namespace othink::cuda
