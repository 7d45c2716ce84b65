// CUDA twin of cpu/fused_linear_logprob.h: token log-probs from hidden states and the LM-head
// weight, chunk by chunk over tokens, so only [chunk, V] float32 logits ever exist (cuBLAS makes
// them; the log-prob kernels of cuda/logprob.cuh read them). Plain C++ includes this header.
#pragma once
#include <cuda_runtime_api.h>

#include <cstddef>
#include <cstdint>

#include "cuda/logprob.cuh"

namespace othink::cuda {

struct FusedLinearShape {
  int64_t n;       // tokens
  int64_t hidden;  // H
  int64_t vocab;   // V
  int64_t chunk;   // tokens per chunk (>= 1)
};

// Tokens per chunk by default on the GPU: about 256 MB of float32 logits, 16 to 4096 tokens.
int64_t default_logprob_chunk(int64_t vocab);

// Device scratch the launchers need, in bytes: one chunk of float32 logits and, for bfloat16, the
// chunk's dlogits in bfloat16 (the backward's GEMMs take both operands in one dtype).
template <typename T>
size_t fused_linear_workspace_bytes(const FusedLinearShape& shape);

// T: float or __nv_bfloat16 for hidden [N, H] and weight [V, H]; logits, outputs and the
// accumulation are float32. Throws std::runtime_error when the build has no cuBLAS.
template <typename T>
void fused_linear_logprobs_forward(const T* hidden, const T* weight, const int32_t* targets,
                                   FusedLinearShape shape, float inv_temperature, int32_t ignore_index,
                                   LogprobOutputs out, void* workspace, size_t workspace_bytes,
                                   cudaStream_t stream);

// grad_hidden [N, H] float32 is overwritten; grad_weight [V, H] float32 is accumulated into (zero
// it for a fresh one). Either may be null to skip it.
template <typename T>
void fused_linear_logprobs_backward(const T* hidden, const T* weight, const int32_t* targets,
                                    const float* lse, const float* entropy, const float* grad_logprobs,
                                    const float* grad_entropy, FusedLinearShape shape,
                                    float inv_temperature, int32_t ignore_index, float* grad_hidden,
                                    float* grad_weight, void* workspace, size_t workspace_bytes,
                                    cudaStream_t stream);

}  // namespace othink::cuda
