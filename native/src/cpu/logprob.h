// Token log-probabilities from logits: log_softmax(logits / T)[target] without materialising the
// softmax (one read of the logits), plus the log-sum-exp and optionally the entropy.
#pragma once
#include <cstdint>

namespace othink::cpu {

struct LogprobOutputs {
  float* logprobs;  // [N]
  float* lse;       // [N] log-sum-exp of logits / T (kept for the backward)
  float* entropy;   // [N] or nullptr
};

// Rows whose target equals ignore_index get logprob 0, lse 0, entropy 0 and a zero gradient.
void token_logprobs_forward(const float* logits, const int32_t* targets, int64_t n, int64_t vocab,
                            float inv_temperature, int32_t ignore_index, LogprobOutputs out);

// One row of the forward; also used by the fused-linear kernel on its chunks.
void token_logprobs_row(const float* row, int32_t target, int64_t vocab, float inv_temperature,
                        float* logprob, float* lse, float* entropy);

// dlogits = d/dlogits of sum_i (grad_logprobs[i] * logprob[i] + grad_entropy[i] * entropy[i]).
// `dlogits` may alias `logits` (in place). `entropy` and `grad_entropy` go together or are both null.
void token_logprobs_backward(const float* logits, const int32_t* targets, const float* lse,
                             const float* entropy, const float* grad_logprobs,
                             const float* grad_entropy, int64_t n, int64_t vocab,
                             float inv_temperature, int32_t ignore_index, float* dlogits);

void token_logprobs_backward_row(const float* row, int32_t target, float lse, float entropy,
                                 float grad_logprob, float grad_entropy, int64_t vocab,
                                 float inv_temperature, float* drow);

}  // namespace othink::cpu
