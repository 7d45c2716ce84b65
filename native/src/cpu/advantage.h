// GRPO group advantages (DeepSeekMath / R1-V / TRL): A = (r - mean_group) / (std + eps),
// std unbiased (N - 1), sequences of one prompt contiguous: group g = rows g*G .. g*G+G-1.
#pragma once
#include <cstdint>

namespace othink::cpu {

enum class AdvantageScale {
  Group,  // std of the group (TRL 0.14, R1-V, the paper's Eq. 2)
  Batch,  // std of the whole batch (TRL scale_rewards="batch")
  None,   // no scaling: r - mean_group (Dr. GRPO)
};

// rewards [n], n = groups * group_size. Non-finite rewards are left out of every mean and std and
// get advantage 0 when skip_non_finite; otherwise the outputs are unspecified if any reward is
// not finite (the caller checks the result and rejects such input). Returns whether every reward
// was finite. A group (or batch) with fewer than two finite rewards has std 0.
bool group_advantages(const float* rewards, int64_t n, int64_t group_size, AdvantageScale scale,
                      bool skip_non_finite, float eps, float* advantages, float* group_means,
                      float* group_stds);

// Index of the first NaN or infinite value of x[0..n), or -1 (for the error message).
int64_t first_non_finite(const float* x, int64_t n);

}  // namespace othink::cpu
