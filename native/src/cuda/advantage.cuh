// CUDA twin of cpu/advantage.h: GRPO group advantages A = (r - mean_group) / (std + eps), std
// unbiased, non-finite rewards left out of every mean and std with advantage 0, the moments in
// float64 as on the CPU. Plain C++ includes this header.
#pragma once
#include <cuda_runtime_api.h>

#include <cstddef>
#include <cstdint>

namespace othink::cuda {

enum class AdvantageScale {
  Group,  // std of the group (TRL 0.14, R1-V, the paper's Eq. 2)
  Batch,  // std of the whole batch (TRL scale_rewards="batch")
  None,   // no scaling: r - mean_group (Dr. GRPO)
};

// Device scratch of group_advantages, in bytes (the batch std for AdvantageScale::Batch).
size_t group_advantages_workspace_bytes();

// rewards [n], advantages [n], group_means / group_stds [n / group_size]: device pointers.
// n must be a multiple of group_size. skip_non_finite is accepted for symmetry with the CPU twin:
// non-finite rewards are always left out (the caller rejects them when not skipping).
void group_advantages(const float* rewards, int64_t n, int64_t group_size, AdvantageScale scale,
                      bool skip_non_finite, float eps, float* advantages, float* group_means,
                      float* group_stds, void* workspace, size_t workspace_bytes, cudaStream_t stream);

// The bindings' check of rewards on the device (nonFinite: 'error'): index of the first NaN or
// infinite x[i] (its value in *value), or -1. Waits for the stream and copies 8 bytes back (4 more
// when there is such a value).
int64_t first_non_finite(const float* x, int64_t n, float* value, cudaStream_t stream);

}  // namespace othink::cuda
