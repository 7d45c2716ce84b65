// Token log-probs straight from hidden states and the LM-head weight: logits = hidden @ weight^T is
// computed chunk by chunk, so the extra memory is O(chunk * vocab), never O(tokens * vocab).
#pragma once
#include <cstdint>

#include "cpu/logprob.h"

namespace othink::cpu {

struct FusedLinearShape {
  int64_t n;       // tokens
  int64_t hidden;  // H
  int64_t vocab;   // V
  int64_t chunk;   // tokens per chunk (>= 1)
};

void fused_linear_logprobs_forward(const float* hidden, const float* weight, const int32_t* targets,
                                   FusedLinearShape shape, float inv_temperature, int32_t ignore_index,
                                   LogprobOutputs out);

// grad_hidden [N, H] is overwritten; grad_weight [V, H] is accumulated into (zero it for a fresh one).
// Either may be null to skip it.
void fused_linear_logprobs_backward(const float* hidden, const float* weight, const int32_t* targets,
                                    const float* lse, const float* entropy, const float* grad_logprobs,
                                    const float* grad_entropy, FusedLinearShape shape,
                                    float inv_temperature, int32_t ignore_index, float* grad_hidden,
                                    float* grad_weight);

// The chunk a caller gets by default: about 64 MB of float32 logits scratch, 16 to 1024 tokens.
int64_t default_logprob_chunk(int64_t vocab);

}  // namespace othink::cpu
