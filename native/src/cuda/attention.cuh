// CUDA twin of cpu/attention.h: scaled dot-product attention of Qwen2-VL (causal + GQA + key
// padding mask + queries that are the last Sq of Sk positions; or segmented non-causal for the
// vision tower) with the per-row log-sum-exp, and its backward. Same layouts, masks, fully-masked
// row convention (output 0, lse -inf, no gradient) and float32 softmax as the CPU kernel.
// Launchers take device pointers and a stream and return at once; a bad configuration throws
// othink::cuda::CudaError (or std::invalid_argument for a bad argument). Plain C++ includes this
// header (the N-API bridge): no device code here.
#pragma once
#include <cuda_runtime_api.h>

#include <cstdint>

namespace othink::cuda {

// The CPU twin's AttentionShape / AttentionMask (the CUDA headers do not include cpu/*.h).
struct AttentionShape {
  int64_t batch, seq_q, seq_k, heads_q, heads_kv, dim;
};

struct AttentionMask {
  bool causal = false;
  const int32_t* key_mask = nullptr;    // device [batch, seq_k]: nonzero = attend; null = every key
  const int32_t* cu_seqlens = nullptr;  // device [segments + 1], 0 = c0 < ... = seq_k (batch 1, seq_q == seq_k)
  int64_t segments = 0;
};

// The largest head dimension the kernels hold in registers (Qwen2-VL: 128 LLM, 80 vision).
constexpr int64_t kAttentionMaxDim = 256;

// T: float or __nv_bfloat16 for q, k, v, out (scores, softmax and accumulation in float32).
// q [B, Sq, Hq, D], k / v [B, Sk, Hkv, D], out [B, Sq, Hq, D], lse [B, Hq, Sq] float32.
template <typename T>
void attention_forward(const T* q, const T* k, const T* v, const AttentionShape& shape, const AttentionMask& mask,
                       float scale, T* out, float* lse, cudaStream_t stream);

// Gradients of sum(grad_out * out) from the forward's out and lse; dq / dk / dv may each be null.
// GQA: dk / dv sum over the query heads of each kv head. Uses a stream-ordered workspace of
// B * Hq * Sq floats (cudaMallocAsync).
template <typename T>
void attention_backward(const T* q, const T* k, const T* v, const T* out, const float* lse, const T* grad_out,
                        const AttentionShape& shape, const AttentionMask& mask, float scale, T* dq, T* dk, T* dv,
                        cudaStream_t stream);

}  // namespace othink::cuda
