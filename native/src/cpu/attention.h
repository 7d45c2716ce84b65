// Scaled dot-product attention for Qwen2-VL on the CPU, flash-style: scores are computed block by
// block with an online softmax and never stored as an [S, S] matrix; the forward keeps only the
// per-row log-sum-exp, and the backward recomputes the scores from it.
//
// Two masking modes, combinable:
// - causal (LLM, spec §3.3): query i is the (seq_k - seq_q + i)-th position, so with seq_q < seq_k
//   the queries are the last seq_q positions of a KV cache; an optional key padding mask [B, Sk]
//   (left padding) removes keys; grouped-query attention: query head h reads kv head h / (Hq / Hkv);
// - segmented (vision tower, spec §2.5): batch 1, seq_q == seq_k, cu_seqlens boundaries; a token
//   attends to every key of its own segment and none outside it (non-causal).
//
// A query row with no visible key (a left-pad query under a causal mask) gets output 0 and
// lse = -inf, and contributes no gradient anywhere. HF eager instead attends uniformly to all keys
// there; those rows are garbage either way (spec §8.7, fixtures README §1) and are never used.
#pragma once
#include <cstdint>

namespace othink::cpu {

struct AttentionShape {
  int64_t batch, seq_q, seq_k, heads_q, heads_kv, dim;
};

struct AttentionMask {
  bool causal = false;
  const int32_t* key_mask = nullptr;    // [batch, seq_k]: nonzero = attend; null = every key
  const int32_t* cu_seqlens = nullptr;  // [segments + 1], 0 = c0 < c1 < ... = seq_k; null = one segment
  int64_t segments = 0;
};

// q: [B, Sq, Hq, D]; k, v: [B, Sk, Hkv, D]; out: [B, Sq, Hq, D]; lse: [B, Hq, Sq] (natural log of
// the softmax denominator of the scaled scores, -inf for rows with no visible key).
// Scores are scale * q . k, softmax in float32.
void attention_forward(const float* q, const float* k, const float* v, const AttentionShape& shape,
                       const AttentionMask& mask, float scale, float* out, float* lse);

// Gradients of sum(grad_out * out) from the forward's out and lse. dq / dk / dv may each be null
// (not computed); GQA: dk, dv sum over the query heads that share a kv head.
void attention_backward(const float* q, const float* k, const float* v, const float* out,
                        const float* lse, const float* grad_out, const AttentionShape& shape,
                        const AttentionMask& mask, float scale, float* dq, float* dk, float* dv);

}  // namespace othink::cpu
