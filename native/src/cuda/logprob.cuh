// CUDA twin of cpu/logprob.h: log_softmax(logits / T)[target] in one read of the logits (online
// max / sum-exp), the log-sum-exp, optionally the entropy, and the backward. Launchers take device
// pointers and a stream and return at once; errors in the configuration throw othink::cuda::CudaError.
// Plain C++ includes this header (the N-API bridge): no device code here.
#pragma once
#include <cuda_runtime_api.h>

#include <cstdint>

namespace othink::cuda {

// The CPU twin's LogprobOutputs, with device pointers. The CUDA headers define their own types
// (same fields) instead of including cpu/*.h, which use GCC vector extensions nvcc need not parse.
struct LogprobOutputs {
  float* logprobs;  // [N]
  float* lse;       // [N] log-sum-exp of logits / T (kept for the backward)
  float* entropy;   // [N] or nullptr
};

// T: float or __nv_bfloat16 (logits are widened exactly to float; all math is float32).
// Rows whose target equals ignore_index get logprob 0, lse 0, entropy 0. A target outside
// [0, vocab) that is not the ignore index gets logprob NaN (never an out-of-bounds read).
template <typename T>
void token_logprobs_forward(const T* logits, const int32_t* targets, int64_t n, int64_t vocab,
                            float inv_temperature, int32_t ignore_index, LogprobOutputs out,
                            cudaStream_t stream);

// dlogits = d/dlogits of sum_i (grad_logprobs[i] * logprob[i] + grad_entropy[i] * entropy[i]).
// TGrad: float, or T for a gradient in the input dtype. dlogits may alias logits (in place) when
// TGrad == T. grad_logprobs / grad_entropy may be null (treated as 0); grad_entropy needs entropy.
// Instantiated for (float, float), (bf16, float), (bf16, bf16) and (float, bf16).
template <typename T, typename TGrad>
void token_logprobs_backward(const T* logits, const int32_t* targets, const float* lse,
                             const float* entropy, const float* grad_logprobs,
                             const float* grad_entropy, int64_t n, int64_t vocab,
                             float inv_temperature, int32_t ignore_index, TGrad* dlogits,
                             cudaStream_t stream);

// The bindings' check of the targets when they live on the device (the kernels above index logits
// with them): a grid-stride pass over targets[0..n) finds the first id outside [0, vocab) that is
// not ignore_index and counts the ids that are not ignore_index. Waits for the stream and copies
// the two counters back (16 bytes); the bad id itself is read back only when there is one.
struct TargetCheck {
  int64_t first_bad;  // index of the first bad target, or -1
  int32_t bad_value;  // targets[first_bad] when first_bad >= 0
  int64_t counted;    // targets that are not ignore_index
};
TargetCheck check_targets(const int32_t* targets, int64_t n, int64_t vocab, int32_t ignore_index,
                          cudaStream_t stream);

}  // namespace othink::cuda
