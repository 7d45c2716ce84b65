// Fused linear + token log-prob on the GPU (twin of cpu/fused_linear_logprob.cc). Per chunk of
// tokens: logits = hidden[chunk] @ weight^T into float32 scratch (cuBLAS, float32 accumulation),
// then the log-prob kernels. The backward recomputes the chunk's logits, turns them into dlogits
// (in place for float32; into a bfloat16 copy for bfloat16 so both GEMM operands share a dtype,
// as PyTorch's bf16 LM head does) and runs dHidden = dlogits @ W, dW += dlogits^T @ hidden.
#include <cuda_bf16.h>

#include <algorithm>
#include <type_traits>

#include "cuda/check.cuh"
#include "cuda/fused_linear_logprob.cuh"
#include "cuda/gemm.cuh"

namespace othink::cuda {
namespace {

template <typename T>
constexpr GemmInput gemm_input() {
  return std::is_same_v<T, float> ? GemmInput::F32 : GemmInput::BF16;
}

void check_shape(const char* fn, const FusedLinearShape& s) {
  if (s.n < 0 || s.hidden < 1 || s.vocab < 1 || s.chunk < 1)
    throw_bad_argument(fn, "needs n >= 0 and hidden, vocab, chunk >= 1");
}

struct Scratch {
  float* logits;          // [rows, V] float32
  __nv_bfloat16* dlogits;  // [rows, V] bfloat16 (bfloat16 backward only)
};

template <typename T>
Scratch carve(const char* fn, const FusedLinearShape& s, void* workspace, size_t bytes) {
  if (bytes < fused_linear_workspace_bytes<T>(s) || (s.n > 0 && !workspace))
    throw_bad_argument(fn, "workspace is smaller than fused_linear_workspace_bytes()");
  const size_t rows = static_cast<size_t>(std::min(s.chunk, s.n));
  char* base = static_cast<char*>(workspace);
  Scratch sc{reinterpret_cast<float*>(base), nullptr};
  if (!std::is_same_v<T, float>)
    sc.dlogits = reinterpret_cast<__nv_bfloat16*>(base + align256(rows * s.vocab * sizeof(float)));
  return sc;
}

}  // namespace

int64_t default_logprob_chunk(int64_t vocab) {
  return std::clamp<int64_t>((int64_t{1} << 26) / std::max<int64_t>(vocab, 1), 16, 4096);
}

template <typename T>
size_t fused_linear_workspace_bytes(const FusedLinearShape& s) {
  const size_t elems = static_cast<size_t>(std::max<int64_t>(std::min(s.chunk, s.n), 0)) * s.vocab;
  return align256(elems * sizeof(float)) + (std::is_same_v<T, float> ? 0 : align256(elems * sizeof(__nv_bfloat16)));
}

template <typename T>
void fused_linear_logprobs_forward(const T* hidden, const T* weight, const int32_t* targets,
                                   FusedLinearShape s, float inv_temperature, int32_t ignore_index,
                                   LogprobOutputs out, void* workspace, size_t workspace_bytes,
                                   cudaStream_t stream) {
  check_shape("fused_linear_logprobs_forward", s);
  const Scratch sc = carve<T>("fused_linear_logprobs_forward", s, workspace, workspace_bytes);
  for (int64_t c0 = 0; c0 < s.n; c0 += s.chunk) {
    const int64_t rows = std::min(s.chunk, s.n - c0);
    gemm(false, true, rows, s.vocab, s.hidden, 1.f, hidden + c0 * s.hidden, s.hidden, weight, s.hidden,
         gemm_input<T>(), 0.f, sc.logits, s.vocab, stream);
    token_logprobs_forward<float>(sc.logits, targets + c0, rows, s.vocab, inv_temperature, ignore_index,
                                  {out.logprobs + c0, out.lse + c0, out.entropy ? out.entropy + c0 : nullptr},
                                  stream);
  }
}

template <typename T>
void fused_linear_logprobs_backward(const T* hidden, const T* weight, const int32_t* targets,
                                    const float* lse, const float* entropy, const float* grad_logprobs,
                                    const float* grad_entropy, FusedLinearShape s,
                                    float inv_temperature, int32_t ignore_index, float* grad_hidden,
                                    float* grad_weight, void* workspace, size_t workspace_bytes,
                                    cudaStream_t stream) {
  check_shape("fused_linear_logprobs_backward", s);
  const Scratch sc = carve<T>("fused_linear_logprobs_backward", s, workspace, workspace_bytes);
  if (!grad_hidden && !grad_weight) return;
  for (int64_t c0 = 0; c0 < s.n; c0 += s.chunk) {
    const int64_t rows = std::min(s.chunk, s.n - c0);
    const T* h = hidden + c0 * s.hidden;
    gemm(false, true, rows, s.vocab, s.hidden, 1.f, h, s.hidden, weight, s.hidden, gemm_input<T>(), 0.f,
         sc.logits, s.vocab, stream);
    const void* dlogits = nullptr;
    const float* ent = entropy ? entropy + c0 : nullptr;
    const float* gl = grad_logprobs ? grad_logprobs + c0 : nullptr;
    const float* ge = grad_entropy ? grad_entropy + c0 : nullptr;
    if constexpr (std::is_same_v<T, float>) {
      token_logprobs_backward<float, float>(sc.logits, targets + c0, lse + c0, ent, gl, ge, rows, s.vocab,
                                            inv_temperature, ignore_index, sc.logits, stream);
      dlogits = sc.logits;
    } else {
      token_logprobs_backward<float, __nv_bfloat16>(sc.logits, targets + c0, lse + c0, ent, gl, ge, rows,
                                                    s.vocab, inv_temperature, ignore_index, sc.dlogits, stream);
      dlogits = sc.dlogits;
    }
    // dHidden[chunk] = dlogits @ W;  dW += dlogits^T @ hidden[chunk]
    if (grad_hidden)
      gemm(false, false, rows, s.hidden, s.vocab, 1.f, dlogits, s.vocab, weight, s.hidden, gemm_input<T>(), 0.f,
           grad_hidden + c0 * s.hidden, s.hidden, stream);
    if (grad_weight)
      gemm(true, false, s.vocab, s.hidden, rows, 1.f, dlogits, s.vocab, h, s.hidden, gemm_input<T>(), 1.f,
           grad_weight, s.hidden, stream);
  }
}

using bf16 = __nv_bfloat16;
template size_t fused_linear_workspace_bytes<float>(const FusedLinearShape&);
template size_t fused_linear_workspace_bytes<bf16>(const FusedLinearShape&);
#define OTHINK_INSTANTIATE_FUSED(T)                                                                           \
  template void fused_linear_logprobs_forward<T>(const T*, const T*, const int32_t*, FusedLinearShape, float, \
                                                 int32_t, LogprobOutputs, void*, size_t, cudaStream_t);      \
  template void fused_linear_logprobs_backward<T>(const T*, const T*, const int32_t*, const float*,          \
                                                  const float*, const float*, const float*, FusedLinearShape, \
                                                  float, int32_t, float*, float*, void*, size_t, cudaStream_t);
OTHINK_INSTANTIATE_FUSED(float)
OTHINK_INSTANTIATE_FUSED(bf16)
#undef OTHINK_INSTANTIATE_FUSED

}  // namespace othink::cuda
