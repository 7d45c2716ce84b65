// Per-token KL estimators on the GPU (twin of cpu/kl.cc): elementwise, grid-stride.
#include <algorithm>

#include "cuda/check.cuh"
#include "cuda/device_utils.cuh"
#include "cuda/kl.cuh"

namespace othink::cuda {
namespace {

template <KlEstimator E>
__global__ void kl_kernel(const float* __restrict__ logp, const float* __restrict__ ref, int64_t n, float clamp,
                          float* __restrict__ values, float* __restrict__ grads) {
  const int64_t stride = static_cast<int64_t>(gridDim.x) * blockDim.x;
  for (int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; i < n; i += stride) {
    const KlValue kv = dev::kl_token<E>(logp[i], ref[i], clamp);
    values[i] = kv.value;
    if (grads) grads[i] = kv.grad;
  }
}

template <KlEstimator E>
void launch(const float* logp, const float* ref, int64_t n, float clamp, float* values, float* grads,
            cudaStream_t stream) {
  constexpr int kThreads = 256;
  // Enough blocks to fill any current GPU several times over; the loop covers the rest.
  const int64_t blocks = std::min<int64_t>((n + kThreads - 1) / kThreads, 65536);
  kl_kernel<E><<<static_cast<unsigned>(blocks), kThreads, 0, stream>>>(logp, ref, n, clamp, values, grads);
  OTHINK_CUDA_CHECK_LAUNCH();
}

}  // namespace

void kl_penalty(const float* logp, const float* ref, int64_t n, KlEstimator est, float clamp, float* values,
                float* grads, cudaStream_t stream) {
  if (n < 0) throw_bad_argument("kl_penalty", "n must be >= 0");
  if (n == 0) return;
  if (!logp || !ref || !values) throw_bad_argument("kl_penalty", "logp, ref and values must be device pointers");
  switch (est) {
    case KlEstimator::K1: return launch<KlEstimator::K1>(logp, ref, n, clamp, values, grads, stream);
    case KlEstimator::K2: return launch<KlEstimator::K2>(logp, ref, n, clamp, values, grads, stream);
    case KlEstimator::K3: return launch<KlEstimator::K3>(logp, ref, n, clamp, values, grads, stream);
    case KlEstimator::Abs: return launch<KlEstimator::Abs>(logp, ref, n, clamp, values, grads, stream);
  }
  throw_bad_argument("kl_penalty", "unknown estimator");
}

}  // namespace othink::cuda
