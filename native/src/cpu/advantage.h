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

// rewards [n], n = groups * group_size. Non-finite rewards must be rejected by the caller unless
// skip_non_finite: then they are left out of every mean and std and get advantage 0.
// A group (or batch) with fewer than two finite rewards has std 0.
void group_advantages(const float* rewards, int64_t n, int64_t group_size, AdvantageScale scale,
                      bool skip_non_finite, float eps, float* advantages, float* group_means,
                      float* group_stds);

}  // namespace othink::cpu
