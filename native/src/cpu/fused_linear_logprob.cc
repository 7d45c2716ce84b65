#include "cpu/fused_linear_logprob.h"

#include <algorithm>
#include <vector>

#include "cpu/gemm.h"

namespace othink::cpu {

int64_t default_logprob_chunk(int64_t vocab) {
  return std::clamp<int64_t>((int64_t{1} << 24) / std::max<int64_t>(vocab, 1), 16, 1024);
}

void fused_linear_logprobs_forward(const float* hidden, const float* weight, const int32_t* targets,
                                   FusedLinearShape s, float inv_temperature, int32_t ignore_index,
                                   LogprobOutputs out) {
  std::vector<float> logits(static_cast<size_t>(std::min(s.chunk, s.n) * s.vocab));
  for (int64_t c0 = 0; c0 < s.n; c0 += s.chunk) {
    const int64_t rows = std::min(s.chunk, s.n - c0);
    sgemm(false, true, rows, s.vocab, s.hidden, 1.f, hidden + c0 * s.hidden, s.hidden, weight,
          s.hidden, 0.f, logits.data(), s.vocab);
    token_logprobs_forward(logits.data(), targets + c0, rows, s.vocab, inv_temperature, ignore_index,
                           {out.logprobs + c0, out.lse + c0, out.entropy ? out.entropy + c0 : nullptr});
  }
}

void fused_linear_logprobs_backward(const float* hidden, const float* weight, const int32_t* targets,
                                    const float* lse, const float* entropy, const float* grad_logprobs,
                                    const float* grad_entropy, FusedLinearShape s,
                                    float inv_temperature, int32_t ignore_index, float* grad_hidden,
                                    float* grad_weight) {
  std::vector<float> logits(static_cast<size_t>(std::min(s.chunk, s.n) * s.vocab));
  for (int64_t c0 = 0; c0 < s.n; c0 += s.chunk) {
    const int64_t rows = std::min(s.chunk, s.n - c0);
    const float* h = hidden + c0 * s.hidden;
    // Recompute the chunk's logits, then turn them into dlogits in place.
    sgemm(false, true, rows, s.vocab, s.hidden, 1.f, h, s.hidden, weight, s.hidden, 0.f,
          logits.data(), s.vocab);
    token_logprobs_backward(logits.data(), targets + c0, lse + c0, entropy ? entropy + c0 : nullptr,
                            grad_logprobs ? grad_logprobs + c0 : nullptr,
                            grad_entropy ? grad_entropy + c0 : nullptr, rows, s.vocab,
                            inv_temperature, ignore_index, logits.data());
    // dHidden[chunk] = dlogits @ W;  dW += dlogits^T @ hidden[chunk]
    if (grad_hidden)
      sgemm(false, false, rows, s.hidden, s.vocab, 1.f, logits.data(), s.vocab, weight, s.hidden, 0.f,
            grad_hidden + c0 * s.hidden, s.hidden);
    if (grad_weight)
      sgemm(true, false, s.vocab, s.hidden, rows, 1.f, logits.data(), s.vocab, h, s.hidden, 1.f,
            grad_weight, s.hidden);
  }
}

}  // namespace othink::cpu
