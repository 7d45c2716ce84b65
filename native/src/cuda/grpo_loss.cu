// The fused GRPO loss on the GPU (twin of cpu/grpo_loss.cc), in four small kernels on one stream:
//   1. per sequence: its length (mask sum), float64;
//   2. one block: the batch's mask sum and the token weight of bnpo / dr_grpo / dapo;
//   3. per sequence: every token's loss and gradient, and the sequence's partial statistics;
//   4. one block: the statistics.
// Per-token math is float32 in the CPU twin's order; sums are float64 block reductions.
#include <algorithm>

#include "cuda/allocator.cuh"
#include "cuda/check.cuh"
#include "cuda/device_utils.cuh"
#include "cuda/grpo_loss.cuh"

namespace othink::cuda {
namespace {

constexpr int kStats = 5;  // per sequence: loss, kl mean, clipped low, clipped high, ratio sum
constexpr int kThreads = 256;

struct Workspace {
  double* scalars;    // [2]: mask sum, token weight
  double* seq_len;    // [S]
  double* seq_stats;  // [S * kStats]
};

Workspace carve(void* base, int64_t seqs) {
  char* p = static_cast<char*>(base);
  const size_t s = static_cast<size_t>(seqs);
  return {reinterpret_cast<double*>(p), reinterpret_cast<double*>(p + align256(2 * sizeof(double))),
          reinterpret_cast<double*>(p + align256(2 * sizeof(double)) + align256(s * sizeof(double)))};
}

__global__ void seq_len_kernel(const float* __restrict__ mask, int64_t S, int64_t T, double* __restrict__ seq_len) {
  for (int64_t s = blockIdx.x; s < S; s += gridDim.x) {
    double len = 0.0;
    for (int64_t t = threadIdx.x; t < T; t += blockDim.x) len += mask[s * T + t];
    len = dev::block_sum(len);
    if (threadIdx.x == 0) seq_len[s] = len;
  }
}

__global__ void token_weight_kernel(const double* __restrict__ seq_len, int64_t S, int64_t T, GrpoLossType type,
                                    double normalizer, double* __restrict__ scalars) {
  double sum = 0.0;
  for (int64_t s = threadIdx.x; s < S; s += blockDim.x) sum += seq_len[s];
  const double mask_sum = dev::block_sum(sum);
  if (threadIdx.x != 0) return;
  // Weight of one unmasked token in the aggregate (grpo's depends on the sequence: kernel 3).
  double w = 0.0;
  if (type == GrpoLossType::Bnpo) w = 1.0 / fmax(mask_sum, 1.0);
  if (type == GrpoLossType::DrGrpo) w = 1.0 / (normalizer > 0 ? normalizer : static_cast<double>(S * T));
  if (type == GrpoLossType::Dapo) w = 1.0 / (normalizer > 0 ? normalizer : fmax(mask_sum, 1.0));
  scalars[0] = mask_sum;
  scalars[1] = w;
}

struct TokenArgs {
  const float *logp, *old_logp, *ref_logp, *adv, *mask;
  float *grad_logp, *per_token_loss;
  int64_t S, T;
  float beta, lo, hi, kl_clamp;
  double scale;
  GrpoLossType type;
};

template <KlEstimator E>
__global__ void __launch_bounds__(kThreads) token_kernel(TokenArgs p, const double* __restrict__ scalars,
                                                         const double* __restrict__ seq_len,
                                                         double* __restrict__ seq_stats) {
  const bool use_kl = p.ref_logp != nullptr;
  for (int64_t s = blockIdx.x; s < p.S; s += gridDim.x) {
    const double len = seq_len[s];
    const float w_seq =
        static_cast<float>(p.type == GrpoLossType::Grpo ? 1.0 / (fmax(len, 1.0) * p.S) : scalars[1]);
    const float a = p.adv[s];
    double acc[kStats] = {0.0, 0.0, 0.0, 0.0, 0.0};
    for (int64_t t = threadIdx.x; t < p.T; t += blockDim.x) {
      const int64_t i = s * p.T + t;
      const float lp = p.logp[i], m = p.mask[i];
      const float ratio = p.old_logp ? dev::exp_like_cpu(lp - p.old_logp[i]) : 1.f;
      // min / max written as the CPU's selects, so NaN behaves the same.
      const float lo_r = ratio > p.lo ? ratio : p.lo;
      const float clipped_ratio = lo_r < p.hi ? lo_r : p.hi;
      const float surr = ratio * a < clipped_ratio * a ? ratio * a : clipped_ratio * a;
      const bool clip_low = a < 0.f && ratio < p.lo;
      const bool clip_high = a > 0.f && ratio > p.hi;
      KlValue kv{0.f, 0.f};
      if (use_kl) kv = dev::kl_token<E>(lp, p.ref_logp[i], p.kl_clamp);
      const float ptl = p.beta != 0.f ? p.beta * kv.value - surr : -surr;
      const float w = w_seq * m;
      const float g_surr = (clip_low || clip_high) ? 0.f : -a * ratio;
      if (p.per_token_loss) p.per_token_loss[i] = ptl;
      if (p.grad_logp) {
        const float g = p.beta != 0.f ? w * (g_surr + p.beta * kv.grad) : w * g_surr;
        p.grad_logp[i] = p.scale == 1.0 ? g : static_cast<float>(static_cast<double>(g) * p.scale);
      }
      acc[0] += w * ptl;
      acc[1] += m * kv.value;
      acc[2] += clip_low ? m : 0.f;
      acc[3] += clip_high ? m : 0.f;
      acc[4] += m * ratio;
    }
#pragma unroll
    for (int k = 0; k < kStats; ++k) acc[k] = dev::block_sum(acc[k]);
    if (threadIdx.x == 0) {
      acc[1] /= fmax(len, 1.0);  // the sequence's mean KL
#pragma unroll
      for (int k = 0; k < kStats; ++k) seq_stats[s * kStats + k] = acc[k];
    }
  }
}

__global__ void stats_kernel(const double* __restrict__ seq_stats, int64_t S, const double* __restrict__ scalars,
                             double scale, GrpoLossStats* __restrict__ stats, float* __restrict__ loss_out) {
  double acc[kStats] = {0.0, 0.0, 0.0, 0.0, 0.0};
  for (int64_t s = threadIdx.x; s < S; s += blockDim.x)
#pragma unroll
    for (int k = 0; k < kStats; ++k) acc[k] += seq_stats[s * kStats + k];
#pragma unroll
  for (int k = 0; k < kStats; ++k) acc[k] = dev::block_sum(acc[k]);
  if (threadIdx.x != 0) return;
  const double mask_sum = scalars[0], tokens = fmax(mask_sum, 1.0);
  stats->loss = acc[0] * scale;
  if (loss_out) *loss_out = static_cast<float>(acc[0] * scale);
  stats->mean_kl = S > 0 ? acc[1] / static_cast<double>(S) : 0.0;
  stats->clip_low = acc[2] / tokens;
  stats->clip_high = acc[3] / tokens;
  stats->clip_region = (acc[2] + acc[3]) / tokens;
  stats->mean_ratio = acc[4] / tokens;
  stats->mask_sum = mask_sum;
}

template <KlEstimator E>
void launch_tokens(const TokenArgs& p, const Workspace& ws, unsigned grid, cudaStream_t stream) {
  token_kernel<E><<<grid, kThreads, 0, stream>>>(p, ws.scalars, ws.seq_len, ws.seq_stats);
  OTHINK_CUDA_CHECK_LAUNCH();
}

}  // namespace

size_t grpo_loss_workspace_bytes(int64_t seqs) {
  const size_t s = static_cast<size_t>(std::max<int64_t>(seqs, 0));
  return align256(2 * sizeof(double)) + align256(s * sizeof(double)) + align256(s * kStats * sizeof(double));
}

void grpo_loss(const float* logp, const float* old_logp, const float* ref_logp, const float* advantages,
               const float* mask, const GrpoLossConfig& cfg, float* grad_logp, float* per_token_loss,
               GrpoLossStats* stats, float* loss_out, void* workspace, size_t workspace_bytes,
               cudaStream_t stream) {
  const int64_t S = cfg.seqs, T = cfg.tokens;
  if (S < 0 || T < 0) throw_bad_argument("grpo_loss", "seqs and tokens must be >= 0");
  if (cfg.beta != 0.f && !ref_logp) throw_bad_argument("grpo_loss", "ref_logp is required when beta != 0");
  if (!stats || !workspace || workspace_bytes < grpo_loss_workspace_bytes(S))
    throw_bad_argument("grpo_loss", "needs stats and grpo_loss_workspace_bytes() of workspace");
  if (S * T > 0 && (!logp || !mask || !advantages))
    throw_bad_argument("grpo_loss", "logp, advantages and mask must be device pointers");
  const Workspace ws = carve(workspace, S);
  const unsigned grid = dev::grid_for(std::max<int64_t>(S, 1));
  if (S > 0) {
    seq_len_kernel<<<grid, kThreads, 0, stream>>>(mask, S, T, ws.seq_len);
    OTHINK_CUDA_CHECK_LAUNCH();
  }
  token_weight_kernel<<<1, 1024, 0, stream>>>(ws.seq_len, S, T, cfg.type, cfg.normalizer, ws.scalars);
  OTHINK_CUDA_CHECK_LAUNCH();
  if (S > 0) {
    const TokenArgs p{logp, old_logp, ref_logp, advantages, mask, grad_logp, per_token_loss, S, T, cfg.beta,
                      1.f - cfg.eps_low, 1.f + cfg.eps_high, cfg.kl_clamp, cfg.scale, cfg.type};
    switch (cfg.kl) {
      case KlEstimator::K1: launch_tokens<KlEstimator::K1>(p, ws, grid, stream); break;
      case KlEstimator::K2: launch_tokens<KlEstimator::K2>(p, ws, grid, stream); break;
      case KlEstimator::Abs: launch_tokens<KlEstimator::Abs>(p, ws, grid, stream); break;
      case KlEstimator::K3:
      default: launch_tokens<KlEstimator::K3>(p, ws, grid, stream); break;
    }
  }
  stats_kernel<<<1, 1024, 0, stream>>>(ws.seq_stats, S, ws.scalars, cfg.scale, stats, loss_out);
  OTHINK_CUDA_CHECK_LAUNCH();
}

GrpoLossStats grpo_loss_stats(const float* logp, const float* old_logp, const float* ref_logp,
                              const float* advantages, const float* mask, const GrpoLossConfig& cfg,
                              float* grad_logp, float* per_token_loss, float* loss_out, cudaStream_t stream) {
  const size_t ws_bytes = grpo_loss_workspace_bytes(cfg.seqs);
  // One block: the statistics first (256-byte aligned), then the workspace.
  DeviceScratch scratch(align256(sizeof(GrpoLossStats)) + ws_bytes);
  char* base = scratch.as<char>();
  GrpoLossStats* stats = reinterpret_cast<GrpoLossStats*>(base);
  grpo_loss(logp, old_logp, ref_logp, advantages, mask, cfg, grad_logp, per_token_loss, stats, loss_out,
            base + align256(sizeof(GrpoLossStats)), ws_bytes, stream);
  GrpoLossStats host{};
  OTHINK_CUDA_CHECK(cudaMemcpyAsync(&host, stats, sizeof(host), cudaMemcpyDeviceToHost, stream));
  OTHINK_CUDA_CHECK(cudaStreamSynchronize(stream));
  return host;
}

}  // namespace othink::cuda
