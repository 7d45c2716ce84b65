// Token log-probs on the GPU (twin of cpu/logprob.cc). Forward: one block per row, one pass over
// the row: each thread keeps an online softmax state over its 128-bit vectors, then the block
// merges the states with warp shuffles and shared memory (as llm.c's fused_classifier). Backward:
// elementwise, rows split over blockIdx.y so a few long rows still fill the GPU.
#include <cuda_bf16.h>
#include <math_constants.h>

#include <algorithm>
#include <climits>

#include "cuda/allocator.cuh"
#include "cuda/check.cuh"
#include "cuda/device_utils.cuh"
#include "cuda/logprob.cuh"
#include "cuda/online_softmax.cuh"

namespace othink::cuda {
namespace {

using dev::kVec;
using dev::SoftmaxState;

template <typename T, bool kEntropy>
__global__ void __launch_bounds__(1024)
    forward_kernel(const T* __restrict__ logits, const int32_t* __restrict__ targets, int64_t n, int64_t vocab,
                   float inv_t, int32_t ignore_index, float* __restrict__ logprobs, float* __restrict__ lse,
                   float* __restrict__ entropy) {
  for (int64_t row = blockIdx.x; row < n; row += gridDim.x) {
    const int32_t target = targets[row];
    if (target == ignore_index) {  // the same in every thread: the whole block skips the row
      if (threadIdx.x == 0) {
        logprobs[row] = 0.f;
        lse[row] = 0.f;
        if (kEntropy) entropy[row] = 0.f;
      }
      continue;
    }
    const T* x = logits + row * vocab;
    const dev::RowSplit sp = dev::split_row(x, vocab);
    SoftmaxState st = dev::empty_state();
    float z[kVec];
    for (int64_t j = threadIdx.x; j < sp.head; j += blockDim.x) {
      z[0] = dev::to_float(x[j]) * inv_t;
      dev::softmax_add<kEntropy, 1>(st, z);
    }
    for (int64_t v = threadIdx.x; v < sp.nvec; v += blockDim.x) {
      dev::load8(x + sp.head + v * kVec, z);
#pragma unroll
      for (int k = 0; k < kVec; ++k) z[k] *= inv_t;
      dev::softmax_add<kEntropy, kVec>(st, z);
    }
    for (int64_t j = sp.tail + threadIdx.x; j < vocab; j += blockDim.x) {
      z[0] = dev::to_float(x[j]) * inv_t;
      dev::softmax_add<kEntropy, 1>(st, z);
    }
    st = dev::block_merge(st);
    if (threadIdx.x == 0) {
      const float log_s = logf(st.s);
      const float l = st.m + log_s;
      lse[row] = l;
      logprobs[row] = target >= 0 && target < vocab ? dev::to_float(x[target]) * inv_t - l : CUDART_NAN_F;
      if (kEntropy) entropy[row] = log_s - st.t / st.s;
    }
  }
}

// Per-row constants of the backward: z = x / T, d = z - lse, p = exp(d),
// d logprob / dz_j = onehot_j - p_j, d entropy / dz_j = -p_j (d_j + H); dz/dx = 1/T.
struct RowGrad {
  float gl, ge, lse, h;
};

// As the CPU twin: d is floored at -88 (exp of it is 0 in float), so a -inf (masked) logit gives
// p = 0 and a finite (d + H) instead of 0 * -inf.
constexpr float kMinExponent = -88.f;

template <bool kEntropy>
__device__ __forceinline__ float grad_at(const RowGrad& g, float xv, bool is_target, float inv_t) {
  const float d = fmaxf(xv * inv_t - g.lse, kMinExponent);
  const float p = __expf(d);
  const float grad = kEntropy ? -p * (g.gl + g.ge * (d + g.h)) : -p * g.gl;
  return is_target ? grad + g.gl : grad;
}

// logits and dlogits may alias (in place): no __restrict__ on them. Each element is read and then
// written by the same thread, and no element is touched by two threads.
template <typename T, typename TG, bool kEntropy>
__global__ void __launch_bounds__(256)
    backward_kernel(const T* logits, const int32_t* __restrict__ targets, const float* __restrict__ lse,
                    const float* __restrict__ entropy, const float* __restrict__ grad_logprobs,
                    const float* __restrict__ grad_entropy, int64_t n, int64_t vocab, float inv_t,
                    int32_t ignore_index, TG* dlogits) {
  const int64_t first = static_cast<int64_t>(blockIdx.y) * blockDim.x + threadIdx.x;
  const int64_t stride = static_cast<int64_t>(gridDim.y) * blockDim.x;
  for (int64_t row = blockIdx.x; row < n; row += gridDim.x) {
    const int32_t target = targets[row];
    const bool ignored = target == ignore_index;  // the row's gradient is 0
    RowGrad g{0.f, 0.f, 0.f, 0.f};
    if (!ignored) {
      g.gl = (grad_logprobs ? grad_logprobs[row] : 0.f) * inv_t;
      g.lse = lse[row];
      if (kEntropy) {
        g.ge = grad_entropy[row] * inv_t;
        g.h = entropy[row];
      }
    }
    const T* x = logits + row * vocab;
    TG* d = dlogits + row * vocab;
    const dev::RowSplit sp = dev::split_row(x, vocab);
    if (blockIdx.y == 0) {  // the unaligned ends of the row, by the row's first slice
      for (int64_t j = threadIdx.x; j < sp.head; j += blockDim.x)
        d[j] = dev::from_float<TG>(ignored ? 0.f : grad_at<kEntropy>(g, dev::to_float(x[j]), j == target, inv_t));
      for (int64_t j = sp.tail + threadIdx.x; j < vocab; j += blockDim.x)
        d[j] = dev::from_float<TG>(ignored ? 0.f : grad_at<kEntropy>(g, dev::to_float(x[j]), j == target, inv_t));
    }
    // x's aligned middle may be unaligned in d (other dtype, row stride not a multiple of 8).
    const bool vector_store = dev::aligned16(d + sp.head);
    for (int64_t v = first; v < sp.nvec; v += stride) {
      const int64_t j0 = sp.head + v * kVec;
      float val[kVec];
      if (ignored) {
#pragma unroll
        for (int k = 0; k < kVec; ++k) val[k] = 0.f;
      } else {
        dev::load8(x + j0, val);
#pragma unroll
        for (int k = 0; k < kVec; ++k) val[k] = grad_at<kEntropy>(g, val[k], j0 + k == target, inv_t);
      }
      if (vector_store) {
        dev::store8(d + j0, val);
      } else {
#pragma unroll
        for (int k = 0; k < kVec; ++k) d[j0 + k] = dev::from_float<TG>(val[k]);
      }
    }
  }
}

// Enough threads that each handles a few vectors; 1024 for Qwen2-VL's 151,936-entry vocabulary.
int forward_threads(int64_t vocab) {
  return vocab >= 65536 ? 1024 : vocab >= 8192 ? 512 : vocab >= 2048 ? 256 : 128;
}

constexpr int kBackwardThreads = 256;

// result[0]: the smallest index of a bad target (ULLONG_MAX: none), result[1]: targets counted.
// 64-bit counters: any n works. One atomic per warp, not per element.
__global__ void __launch_bounds__(256)
    check_targets_kernel(const int32_t* __restrict__ targets, int64_t n, int64_t vocab, int32_t ignore_index,
                         unsigned long long* __restrict__ result) {
  unsigned long long first = ULLONG_MAX, counted = 0;
  const int64_t stride = static_cast<int64_t>(gridDim.x) * blockDim.x;
  for (int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; i < n; i += stride) {
    const int32_t t = targets[i];
    if (t == ignore_index) continue;
    ++counted;
    // i only grows in this loop: a thread's first bad index is its smallest.
    if ((t < 0 || t >= vocab) && first == ULLONG_MAX) first = static_cast<unsigned long long>(i);
  }
#pragma unroll
  for (int offset = 16; offset > 0; offset >>= 1) {
    const unsigned long long other = __shfl_xor_sync(dev::kFullMask, first, offset);
    first = other < first ? other : first;
    counted += __shfl_xor_sync(dev::kFullMask, counted, offset);
  }
  if ((threadIdx.x & 31) == 0) {
    if (first != ULLONG_MAX) atomicMin(&result[0], first);
    if (counted != 0) atomicAdd(&result[1], counted);
  }
}

}  // namespace

template <typename T>
void token_logprobs_forward(const T* logits, const int32_t* targets, int64_t n, int64_t vocab,
                            float inv_temperature, int32_t ignore_index, LogprobOutputs out,
                            cudaStream_t stream) {
  if (n < 0 || vocab < 1) throw_bad_argument("token_logprobs_forward", "needs n >= 0 and vocab >= 1");
  if (n == 0) return;
  if (!logits || !targets || !out.logprobs || !out.lse)
    throw_bad_argument("token_logprobs_forward", "logits, targets, logprobs and lse must be device pointers");
  const unsigned grid = dev::grid_for(n);
  const int threads = forward_threads(vocab);
  if (out.entropy)
    forward_kernel<T, true><<<grid, threads, 0, stream>>>(logits, targets, n, vocab, inv_temperature, ignore_index,
                                                          out.logprobs, out.lse, out.entropy);
  else
    forward_kernel<T, false><<<grid, threads, 0, stream>>>(logits, targets, n, vocab, inv_temperature, ignore_index,
                                                           out.logprobs, out.lse, nullptr);
  OTHINK_CUDA_CHECK_LAUNCH();
}

template <typename T, typename TGrad>
void token_logprobs_backward(const T* logits, const int32_t* targets, const float* lse,
                             const float* entropy, const float* grad_logprobs,
                             const float* grad_entropy, int64_t n, int64_t vocab,
                             float inv_temperature, int32_t ignore_index, TGrad* dlogits,
                             cudaStream_t stream) {
  if (n < 0 || vocab < 1) throw_bad_argument("token_logprobs_backward", "needs n >= 0 and vocab >= 1");
  if (n == 0) return;
  if (!logits || !targets || !lse || !dlogits)
    throw_bad_argument("token_logprobs_backward", "logits, targets, lse and dlogits must be device pointers");
  if (grad_entropy && !entropy) throw_bad_argument("token_logprobs_backward", "grad_entropy needs entropy");
  // Slices of a row: about four vectors per thread, at most 65535 (gridDim.y's limit).
  const int64_t nvec = vocab / kVec + 1;
  const int64_t per_block = static_cast<int64_t>(kBackwardThreads) * 4;
  const int64_t slices = std::min<int64_t>(std::max<int64_t>((nvec + per_block - 1) / per_block, 1), 65535);
  const dim3 grid(dev::grid_for(n), static_cast<unsigned>(slices));
  if (grad_entropy)
    backward_kernel<T, TGrad, true><<<grid, kBackwardThreads, 0, stream>>>(
        logits, targets, lse, entropy, grad_logprobs, grad_entropy, n, vocab, inv_temperature, ignore_index, dlogits);
  else
    backward_kernel<T, TGrad, false><<<grid, kBackwardThreads, 0, stream>>>(
        logits, targets, lse, nullptr, grad_logprobs, nullptr, n, vocab, inv_temperature, ignore_index, dlogits);
  OTHINK_CUDA_CHECK_LAUNCH();
}

TargetCheck check_targets(const int32_t* targets, int64_t n, int64_t vocab, int32_t ignore_index,
                          cudaStream_t stream) {
  if (n < 0 || vocab < 1) throw_bad_argument("check_targets", "needs n >= 0 and vocab >= 1");
  if (n == 0) return {-1, 0, 0};
  if (!targets) throw_bad_argument("check_targets", "targets must be a device pointer");
  DeviceScratch scratch(2 * sizeof(unsigned long long));
  unsigned long long* result = scratch.as<unsigned long long>();
  // All-ones bytes: ULLONG_MAX (no bad target yet); then a zero count.
  OTHINK_CUDA_CHECK(cudaMemsetAsync(result, 0xff, sizeof(unsigned long long), stream));
  OTHINK_CUDA_CHECK(cudaMemsetAsync(result + 1, 0, sizeof(unsigned long long), stream));
  constexpr int kThreads = 256;
  // A few blocks per SM of any current GPU; the grid-stride loop covers the rest.
  const int64_t blocks = std::min<int64_t>((n + kThreads - 1) / kThreads, 1024);
  check_targets_kernel<<<static_cast<unsigned>(blocks), kThreads, 0, stream>>>(targets, n, vocab, ignore_index,
                                                                               result);
  OTHINK_CUDA_CHECK_LAUNCH();
  unsigned long long host[2] = {0, 0};
  OTHINK_CUDA_CHECK(cudaMemcpyAsync(host, result, sizeof(host), cudaMemcpyDeviceToHost, stream));
  OTHINK_CUDA_CHECK(cudaStreamSynchronize(stream));
  TargetCheck check{-1, 0, static_cast<int64_t>(host[1])};
  if (host[0] != ULLONG_MAX) {
    check.first_bad = static_cast<int64_t>(host[0]);
    OTHINK_CUDA_CHECK(cudaMemcpyAsync(&check.bad_value, targets + check.first_bad, sizeof(int32_t),
                                      cudaMemcpyDeviceToHost, stream));
    OTHINK_CUDA_CHECK(cudaStreamSynchronize(stream));
  }
  return check;
}

using bf16 = __nv_bfloat16;
template void token_logprobs_forward<float>(const float*, const int32_t*, int64_t, int64_t, float, int32_t,
                                            LogprobOutputs, cudaStream_t);
template void token_logprobs_forward<bf16>(const bf16*, const int32_t*, int64_t, int64_t, float, int32_t,
                                           LogprobOutputs, cudaStream_t);
#define OTHINK_INSTANTIATE_BACKWARD(T, TG)                                                                   \
  template void token_logprobs_backward<T, TG>(const T*, const int32_t*, const float*, const float*,         \
                                               const float*, const float*, int64_t, int64_t, float, int32_t, \
                                               TG*, cudaStream_t);
OTHINK_INSTANTIATE_BACKWARD(float, float)
OTHINK_INSTANTIATE_BACKWARD(bf16, float)
OTHINK_INSTANTIATE_BACKWARD(bf16, bf16)
OTHINK_INSTANTIATE_BACKWARD(float, bf16)
#undef OTHINK_INSTANTIATE_BACKWARD

}  // namespace othink::cuda
